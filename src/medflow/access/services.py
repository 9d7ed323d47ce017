"""Application services of the access context."""

from datetime import datetime, timedelta
from uuid import UUID, uuid4

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from medflow.access.domain import BreakGlassGrant, Clinic
from medflow.access.models import BreakGlassGrantReadModel, ClinicReadModel
from medflow.context import Context, caused_by, require_permission, system_context
from medflow.errors import Conflict, InvalidInput, NotFound, RuleViolated
from medflow.eventstore.commands import CommandResult, execute
from medflow.patients.models import PatientReadModel


def create_clinic(ctx: Context, name: str, code: str, clinic_id: UUID | None = None) -> CommandResult:
    """Open a clinic with a unique code."""
    if ClinicReadModel.objects.filter(code=code.strip()).exists():
        raise Conflict(f"clinic code {code} is taken", field="code", code="clinic_code_taken")
    clinic_id = clinic_id or uuid4()
    return execute(
        ctx, Clinic, clinic_id, lambda clinic: clinic.create(name, code),
        command="CreateClinic", create=True, clinic_id=clinic_id,
    )


def clinic_by_code(code: str) -> ClinicReadModel:
    """Return the clinic with this code."""
    clinic = ClinicReadModel.objects.filter(code=code).first()
    if clinic is None:
        raise NotFound(f"no clinic with code {code!r}", field="clinic")
    return clinic


def grant_role(ctx: Context, clinic_id: UUID, username: str, role: str) -> CommandResult:
    """Give a user a role in a clinic."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user {username!r}", field="username")
    return execute(
        ctx, Clinic, clinic_id, lambda clinic: clinic.grant(user.pk, username, role),
        command="GrantStaffRole",
    )


def revoke_role(ctx: Context, clinic_id: UUID, username: str) -> CommandResult:
    """Take a user's role in a clinic away."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user {username!r}", field="username")
    return execute(
        ctx, Clinic, clinic_id, lambda clinic: clinic.revoke(user.pk), command="RevokeStaffRole"
    )


def break_glass(
    ctx: Context, patient_id: UUID, *, reason: str, now: datetime | None = None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Let a clinician read a patient of another clinic for a limited time, saying why.

    Records BreakGlassAccessGranted (a BreakGlassGrant stream in the patient's clinic), valid for
    settings.MEDFLOW_BREAK_GLASS_MINUTES, and raises a warning alert for the patient's clinic.
    The grant is for reading only: request_context.context_for honours it on GET and HEAD.
    """
    require_permission(ctx, "access.break_glass")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason is required to break the glass", field="reason")
    patient = PatientReadModel.objects.filter(id=patient_id, forgotten=False).first()
    if patient is None:
        raise NotFound(f"no Patient {patient_id}", field="id")
    if patient.clinic_id in ctx.clinic_ids:
        raise RuleViolated("the patient is of a clinic you work in; no break-glass needed",
                           field="id", code="break_glass_not_needed")
    now = now or timezone.now()
    expires_at = now + timedelta(minutes=settings.MEDFLOW_BREAK_GLASS_MINUTES)
    grant_id = uuid4()

    def decide(grant: BreakGlassGrant) -> None:
        grant.grant(patient_id=patient_id, clinic_id=patient.clinic_id, user_id=ctx.user_id,
                    username=ctx.username, reason=reason, expires_at=expires_at)

    with transaction.atomic():
        result = execute(ctx.with_reason(reason), BreakGlassGrant, grant_id, decide,
                         command="BreakGlass", create=True, clinic_id=patient.clinic_id,
                         command_id=command_id)
        if result.events:
            _alert_clinic(result, ctx.username, reason, expires_at)
    return result


def _alert_clinic(result: CommandResult, username: str, reason: str, expires_at: datetime) -> None:
    """Tell the patient's clinic (its admins review alerts) that someone broke the glass."""
    from medflow.work.services import raise_alert

    granted = result.events[0]
    event = granted.event
    ctx = caused_by(system_context("break-glass access"), granted.id, granted.metadata)
    raise_alert(
        ctx, severity="warning", clinic_id=event.clinic_id, patient_id=event.patient_id,
        source="break_glass",
        message=(f"Break-glass access by {username} until {expires_at:%Y-%m-%d %H:%M} UTC;"
                 f" reason: {reason}")[:1000],
    )


def break_glass_patients(user_id: int | None, now: datetime | None = None) -> frozenset[UUID]:
    """Return the patients a user may read by an unexpired break-glass grant."""
    if user_id is None:
        return frozenset()
    rows = BreakGlassGrantReadModel.objects.filter(user_id=user_id,
                                                   expires_at__gt=now or timezone.now())
    return frozenset(rows.values_list("patient_id", flat=True))
