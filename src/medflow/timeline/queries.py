"""Read the patient timeline, scoped to the caller's clinics."""

from datetime import datetime
from uuid import UUID

from medflow.context import Context
from medflow.patients.queries import get_patient
from medflow.timeline.models import TimelineEntry

CLINICAL_ROLES = frozenset({"doctor", "nurse", "admin", "system"})
NON_CLINICAL_KINDS = ("patient", "appointment")


def patient_timeline(
    ctx: Context, patient_id: UUID, *, kinds: list[str] | None = None,
    as_of: datetime | None = None, limit: int = 50, offset: int = 0,
) -> tuple[int, list[TimelineEntry]]:
    """Return the total and one page of a patient's events, newest first."""
    get_patient(ctx, patient_id)  # scope check: 404 outside the caller's clinics
    rows = TimelineEntry.objects.filter(patient_id=patient_id)
    if ctx.role not in CLINICAL_ROLES:
        # Receptionists (and callers without a role here) see no clinical detail.
        rows = rows.filter(kind__in=NON_CLINICAL_KINDS)
    if kinds:
        rows = rows.filter(kind__in=kinds)
    if as_of is not None:
        rows = rows.filter(recorded_at__lte=as_of)
    rows = rows.order_by("-occurred_at", "-position")
    return rows.count(), list(rows[offset:offset + limit])
