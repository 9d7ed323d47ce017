"""Inline projection: keep `task_read_model` and `alert_read_model` in the append's transaction."""

from collections.abc import Sequence

from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent
from medflow.patients.domain import PatientForgotten
from medflow.projections.bulk import Rows
from medflow.work.domain import (
    PRIORITY_RANK,
    SEVERITY_RANK,
    AlertAcknowledged,
    AlertRaised,
    TaskAssigned,
    TaskCompleted,
    TaskReassigned,
)
from medflow.work.models import AlertReadModel, TaskReadModel

# The tables this projection owns, in insert order (rebuild and verify use it).
READ_MODELS = [TaskReadModel, AlertReadModel]
STREAM_VERSIONED = [TaskReadModel, AlertReadModel]


def new_task(recorded: RecordedEvent) -> dict:
    """Return the row a TaskAssigned event creates."""
    event = recorded.event
    return {
        "id": recorded.aggregate_id, "clinic_id": event.clinic_id,
        "assignee_id": event.assignee_id, "title": event.title, "details": event.details,
        "priority": event.priority.value, "priority_rank": PRIORITY_RANK[event.priority],
        "due_at": event.due_at, "patient_id": event.patient_id, "source": event.source or "",
        "status": "pending", "assigned_at": recorded.timestamp,
        "assigned_by": recorded.metadata.get("user_id"), "updated_at": recorded.timestamp,
        "version": recorded.version,
    }


def task_changes(recorded: RecordedEvent) -> dict:
    """Return the columns a TaskReassigned or TaskCompleted event changes."""
    event = recorded.event
    if isinstance(event, TaskReassigned):
        return {"assignee_id": event.assignee_id, "updated_at": recorded.timestamp,
                "version": recorded.version}
    return {
        "status": "completed", "completed_at": recorded.timestamp, "completed_by": event.by,
        "completion_note": event.note or "", "updated_at": recorded.timestamp,
        "version": recorded.version,
    }


def new_alert(recorded: RecordedEvent) -> dict:
    """Return the row an AlertRaised event creates."""
    event = recorded.event
    return {
        "id": recorded.aggregate_id, "clinic_id": event.clinic_id, "patient_id": event.patient_id,
        "severity": event.severity.value, "severity_rank": SEVERITY_RANK[event.severity],
        "message": event.message, "source": event.source or "", "status": "unacknowledged",
        "raised_at": recorded.timestamp, "version": recorded.version,
    }


def alert_changes(recorded: RecordedEvent) -> dict:
    """Return the columns an AlertAcknowledged event changes."""
    event = recorded.event
    return {
        "status": "acknowledged", "acknowledged_at": recorded.timestamp,
        "acknowledged_by": event.by, "acknowledgement_note": event.note or "",
        "version": recorded.version,
    }


@inline.on(TaskAssigned)
def on_task_assigned(recorded: RecordedEvent) -> None:
    TaskReadModel.objects.create(**new_task(recorded))


@inline.on(TaskReassigned, TaskCompleted)
def on_task_changed(recorded: RecordedEvent) -> None:
    TaskReadModel.objects.filter(id=recorded.aggregate_id).update(**task_changes(recorded))


@inline.on(AlertRaised)
def on_alert_raised(recorded: RecordedEvent) -> None:
    AlertReadModel.objects.create(**new_alert(recorded))


@inline.on(AlertAcknowledged)
def on_alert_acknowledged(recorded: RecordedEvent) -> None:
    AlertReadModel.objects.filter(id=recorded.aggregate_id).update(**alert_changes(recorded))


@inline.on(PatientForgotten)
def forget_patient(recorded: RecordedEvent) -> None:
    # These rows hold the patient's free text in clear: a forgotten patient's go.
    AlertReadModel.objects.filter(patient_id=recorded.aggregate_id).delete()
    TaskReadModel.objects.filter(patient_id=recorded.aggregate_id).delete()


@inline.batched(PatientForgotten)
def apply_batch(events: Sequence[RecordedEvent]) -> None:
    """Fold a page of task and alert events into their rows, as the handlers above would."""
    tasks, alerts = Rows(TaskReadModel), Rows(AlertReadModel)
    tasks.load(r.aggregate_id for r in events if r.aggregate_type == "Task")
    alerts.load(r.aggregate_id for r in events if r.aggregate_type == "Alert")
    for recorded in events:
        match recorded.event:
            case TaskAssigned():
                tasks.put(new_task(recorded))
            case TaskReassigned() | TaskCompleted():
                tasks.change(recorded.aggregate_id, **task_changes(recorded))
            case AlertRaised():
                alerts.put(new_alert(recorded))
            case AlertAcknowledged():
                alerts.change(recorded.aggregate_id, **alert_changes(recorded))
    tasks.write()
    alerts.write()
