"""Inline projection: keep the `appointments` read model in the append's transaction."""

from collections.abc import Sequence

from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent
from medflow.patients.domain import PatientForgotten
from medflow.projections.bulk import Rows
from medflow.scheduling.domain import (
    Appointment,
    AppointmentCancelled,
    AppointmentCheckedIn,
    AppointmentCompleted,
    AppointmentNoShow,
    AppointmentRescheduled,
    AppointmentScheduled,
)
from medflow.scheduling.models import AppointmentReadModel

# The tables this projection owns, in insert order (rebuild and verify use it).
READ_MODELS = [AppointmentReadModel]
STREAM_VERSIONED = [AppointmentReadModel]


def row_values(appointment: Appointment, recorded: RecordedEvent) -> dict:
    """Return the read-model columns for an appointment's state after `recorded`."""
    return {
        "patient_id": appointment.patient_id,
        "clinic_id": appointment.clinic_id,
        "provider_id": appointment.provider_id,
        "starts_at": appointment.starts_at,
        "ends_at": appointment.ends_at,
        "status": appointment.status.value,
        "kind": appointment.kind.value,
        "reason": appointment.reason or "",
        "current_data": appointment.state(),
        "last_updated": recorded.timestamp,
        "version": recorded.version,
    }


@inline.on(AppointmentScheduled)
def on_scheduled(recorded: RecordedEvent) -> None:
    appointment = Appointment(recorded.aggregate_id)
    appointment.when(recorded.event)
    AppointmentReadModel.objects.create(
        id=recorded.aggregate_id, scheduled_at=recorded.timestamp,
        **row_values(appointment, recorded),
    )


@inline.on(
    AppointmentRescheduled, AppointmentCancelled, AppointmentCheckedIn, AppointmentCompleted,
    AppointmentNoShow,
)
def on_changed(recorded: RecordedEvent) -> None:
    row = AppointmentReadModel.objects.get(id=recorded.aggregate_id)
    appointment = Appointment.from_snapshot(recorded.aggregate_id, row.version, row.current_data)
    appointment.when(recorded.event)
    AppointmentReadModel.objects.filter(id=recorded.aggregate_id).update(
        **row_values(appointment, recorded)
    )


@inline.on(PatientForgotten)
def forget_patient(recorded: RecordedEvent) -> None:
    # These rows hold the patient's free text in clear: a forgotten patient's go.
    AppointmentReadModel.objects.filter(patient_id=recorded.aggregate_id).delete()


@inline.batched(PatientForgotten)
def apply_batch(events: Sequence[RecordedEvent]) -> None:
    """Fold a page of appointment events into their rows, as the handlers above would."""
    rows = Rows(AppointmentReadModel)
    rows.load({recorded.aggregate_id for recorded in events})
    for recorded in events:
        if isinstance(recorded.event, AppointmentScheduled):
            appointment = Appointment(recorded.aggregate_id)
            scheduled_at = recorded.timestamp
        else:
            row = rows.get(recorded.aggregate_id)
            if row is None:
                raise AppointmentReadModel.DoesNotExist(f"no appointment {recorded.aggregate_id}")
            appointment = Appointment.from_snapshot(recorded.aggregate_id, row["version"],
                                                    row["current_data"])
            scheduled_at = row["scheduled_at"]
        appointment.when(recorded.event)
        rows.put({"id": recorded.aggregate_id, "scheduled_at": scheduled_at,
                  **row_values(appointment, recorded)})
    rows.write()
