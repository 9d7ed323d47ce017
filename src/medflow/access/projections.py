"""Inline projection of clinics, staff roles and break-glass grants."""

from medflow.access.domain import (
    BreakGlassAccessGranted,
    ClinicCreated,
    StaffRoleGranted,
    StaffRoleRevoked,
)
from medflow.access.models import BreakGlassGrantReadModel, ClinicReadModel, Membership
from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent

# The tables this projection owns, in insert order (rebuild and verify use it).
READ_MODELS = [ClinicReadModel, Membership, BreakGlassGrantReadModel]
STREAM_VERSIONED = [ClinicReadModel]


@inline.on(ClinicCreated)
def on_clinic_created(recorded: RecordedEvent) -> None:
    event = recorded.event
    ClinicReadModel.objects.create(
        id=recorded.aggregate_id, name=event.name, code=event.code, version=recorded.version
    )


@inline.on(StaffRoleGranted)
def on_role_granted(recorded: RecordedEvent) -> None:
    event = recorded.event
    Membership.objects.update_or_create(
        user_id=event.user_id, clinic_id=recorded.aggregate_id, defaults={"role": event.role.value}
    )
    ClinicReadModel.objects.filter(id=recorded.aggregate_id).update(version=recorded.version)


@inline.on(StaffRoleRevoked)
def on_role_revoked(recorded: RecordedEvent) -> None:
    Membership.objects.filter(
        user_id=recorded.event.user_id, clinic_id=recorded.aggregate_id
    ).delete()
    ClinicReadModel.objects.filter(id=recorded.aggregate_id).update(version=recorded.version)


@inline.on(BreakGlassAccessGranted)
def on_break_glass(recorded: RecordedEvent) -> None:
    event = recorded.event
    BreakGlassGrantReadModel.objects.create(
        id=recorded.aggregate_id, patient_id=event.patient_id, clinic_id=event.clinic_id,
        user_id=event.user_id, username=event.username, reason=event.reason,
        granted_at=recorded.timestamp, expires_at=event.expires_at,
    )
