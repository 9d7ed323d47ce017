"""Reads the web UI needs that the other contexts do not offer; scoped and logged like theirs."""

from datetime import date
from uuid import UUID

from medflow.access.models import BreakGlassGrantReadModel
from medflow.audit.models import AccessLogEntry
from medflow.context import Context, require_permission
from medflow.patients.models import PatientReadModel
from medflow.patients.queries import visible_patient, visible_patients


def patients_born_on(ctx: Context, birth_date: date, *, limit: int = 20) -> list[PatientReadModel]:
    """Return the caller's patients born on a date (each one read is logged)."""
    rows = visible_patients(ctx).filter(forgotten=False, birth_date=birth_date)
    page = list(rows.order_by("family_name", "given_names", "id")[:limit])
    for row in page:
        ctx.note_read(row.id, row.clinic_id)
    return page


def access_log(ctx: Context, patient_id: UUID, *, break_glass_only: bool = False,
               limit: int = 200) -> tuple[int, list[AccessLogEntry]]:
    """Return who read a patient's data, newest first (admins of the patient's clinic)."""
    require_permission(ctx, "audit.read_access_log")
    visible_patient(ctx, patient_id)
    rows = AccessLogEntry.objects.filter(patient_id=patient_id)
    if break_glass_only:
        rows = rows.filter(break_glass=True)
    rows = rows.order_by("-id")
    entries = list(rows[:limit])
    grants = break_glass_grants(ctx, patient_id)
    for entry in entries:
        if entry.break_glass and not entry.reason:
            # The read itself carries no reason: the grant that allowed it does.
            grant = next((g for g in grants if g.user_id == entry.user_id
                          and g.granted_at <= entry.at <= g.expires_at), None)
            entry.reason = grant.reason if grant else ""
    return rows.count(), entries


def break_glass_grants(ctx: Context, patient_id: UUID) -> list[BreakGlassGrantReadModel]:
    """Return the break-glass grants on a patient, newest first (for the audit view)."""
    require_permission(ctx, "audit.read_access_log")
    visible_patient(ctx, patient_id)
    return list(BreakGlassGrantReadModel.objects.filter(patient_id=patient_id)
                .order_by("-granted_at"))
