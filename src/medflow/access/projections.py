"""Inline projection of clinics and staff roles."""

from medflow.access.domain import ClinicCreated, StaffRoleGranted, StaffRoleRevoked
from medflow.access.models import ClinicReadModel, Membership
from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent

# The tables this projection owns, in insert order (rebuild and verify use it).
READ_MODELS = [ClinicReadModel, Membership]
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
