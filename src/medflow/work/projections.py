"""Inline projection: keep `task_read_model` and `alert_read_model` in the append's transaction."""

from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent
from medflow.patients.domain import PatientForgotten
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


@inline.on(TaskAssigned)
def on_task_assigned(recorded: RecordedEvent) -> None:
    event = recorded.event
    TaskReadModel.objects.create(
        id=recorded.aggregate_id, clinic_id=event.clinic_id, assignee_id=event.assignee_id,
        title=event.title, details=event.details, priority=event.priority.value,
        priority_rank=PRIORITY_RANK[event.priority], due_at=event.due_at,
        patient_id=event.patient_id, source=event.source or "", status="pending",
        assigned_at=recorded.timestamp, assigned_by=recorded.metadata.get("user_id"),
        updated_at=recorded.timestamp, version=recorded.version,
    )


@inline.on(TaskReassigned)
def on_task_reassigned(recorded: RecordedEvent) -> None:
    TaskReadModel.objects.filter(id=recorded.aggregate_id).update(
        assignee_id=recorded.event.assignee_id, updated_at=recorded.timestamp,
        version=recorded.version,
    )


@inline.on(TaskCompleted)
def on_task_completed(recorded: RecordedEvent) -> None:
    event = recorded.event
    TaskReadModel.objects.filter(id=recorded.aggregate_id).update(
        status="completed", completed_at=recorded.timestamp, completed_by=event.by,
        completion_note=event.note or "", updated_at=recorded.timestamp, version=recorded.version,
    )


@inline.on(AlertRaised)
def on_alert_raised(recorded: RecordedEvent) -> None:
    event = recorded.event
    AlertReadModel.objects.create(
        id=recorded.aggregate_id, clinic_id=event.clinic_id, patient_id=event.patient_id,
        severity=event.severity.value, severity_rank=SEVERITY_RANK[event.severity],
        message=event.message, source=event.source or "", status="unacknowledged",
        raised_at=recorded.timestamp, version=recorded.version,
    )


@inline.on(AlertAcknowledged)
def on_alert_acknowledged(recorded: RecordedEvent) -> None:
    event = recorded.event
    AlertReadModel.objects.filter(id=recorded.aggregate_id).update(
        status="acknowledged", acknowledged_at=recorded.timestamp, acknowledged_by=event.by,
        acknowledgement_note=event.note or "", version=recorded.version,
    )


@inline.on(PatientForgotten)
def forget_patient(recorded: RecordedEvent) -> None:
    # These rows hold the patient's free text in clear: a forgotten patient's go.
    AlertReadModel.objects.filter(patient_id=recorded.aggregate_id).delete()
    TaskReadModel.objects.filter(patient_id=recorded.aggregate_id).delete()
