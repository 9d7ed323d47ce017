"""Process managers of the scheduling context: inline handlers that run commands in reaction.

Each is idempotent: a redelivered event (the same RecordedEvent handled twice) does nothing the
second time, because every command it runs is keyed by the triggering event's id.
"""

from uuid import UUID, uuid5

from medflow.context import caused_by, system_context
from medflow.eventstore import store
from medflow.eventstore.commands import load_aggregate
from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent
from medflow.patients.domain import PatientArchived

# Registers the read model's handlers before this module's, so that they run first.
from medflow.scheduling import projections  # noqa: F401
from medflow.scheduling.domain import Appointment, AppointmentCheckedIn, Status
from medflow.scheduling.models import AppointmentReadModel
from medflow.scheduling.services import cancel_appointment

# Fixed namespace for the ids this module derives from event ids; never change it, or a
# redelivered event would start a second encounter.
NAMESPACE = UUID("6f1d3c52-3b0e-4c8e-9a57-2f7f4f0b8e61")


def encounter_id_for(recorded: RecordedEvent) -> UUID:
    """Return the id of the encounter that a check-in event starts."""
    return uuid5(NAMESPACE, str(recorded.id))


@inline.on(AppointmentCheckedIn)
def start_encounter_on_check_in(recorded: RecordedEvent) -> None:
    """Start an ambulatory encounter for the patient who just checked in."""
    encounter_id = encounter_id_for(recorded)
    if store.current_version(encounter_id):
        return  # redelivered: the encounter exists already
    # Imported here so that scheduling loads without the clinical context's services.
    from medflow.clinical.services import start_encounter

    appointment = load_aggregate(Appointment, recorded.aggregate_id, to_version=recorded.version)
    ctx = caused_by(system_context("appointment checked in"), recorded.id, recorded.metadata)
    start_encounter(
        ctx, patient_id=appointment.patient_id, provider_id=appointment.provider_id,
        kind="ambulatory", appointment_id=appointment.id, reason=appointment.reason,
        encounter_id=encounter_id, started_at=recorded.event.at,
    )


@inline.on(PatientArchived)
def cancel_appointments_of_archived_patient(recorded: RecordedEvent) -> None:
    """Cancel the archived patient's appointments that had not begun when the record closed."""
    future = (
        AppointmentReadModel.objects.filter(
            patient_id=recorded.aggregate_id, status=Status.SCHEDULED.value,
            starts_at__gt=recorded.timestamp,
        )
        .order_by("starts_at")
        .values_list("id", flat=True)
    )
    ctx = caused_by(system_context("patient archived"), recorded.id, recorded.metadata)
    for appointment_id in list(future):
        cancel_appointment(
            ctx, appointment_id, reason="patient archived", by="system",
            command_id=uuid5(NAMESPACE, f"{recorded.id}:cancel:{appointment_id}"),
        )
