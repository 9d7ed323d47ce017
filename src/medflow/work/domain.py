"""The Task and Alert aggregates and their events. Plain Python and pydantic: no Django here.

Both may concern a patient (`patient_id`), which puts their events on the patient's timeline, or
no patient at all (`patient_id` None: "restock the vaccine fridge").
"""

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID

from pydantic import AwareDatetime, StringConstraints

from medflow.errors import RuleViolated
from medflow.eventstore.aggregate import Aggregate
from medflow.eventstore.events import DomainEvent, validate_event

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)]
Message = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Source = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class TaskPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


# Work queues sort on this: urgent first.
PRIORITY_RANK = {TaskPriority.URGENT: 0, TaskPriority.HIGH: 1, TaskPriority.NORMAL: 2,
                 TaskPriority.LOW: 3}


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


class TaskAssigned(DomainEvent):
    """A task was given to a member of staff. `source` names what caused it (an event id ...)."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"title", "details"})

    timeline_kind: ClassVar[str] = "task"

    clinic_id: UUID
    assignee_id: int
    title: Title
    details: Text = ""
    priority: TaskPriority = TaskPriority.NORMAL
    due_at: AwareDatetime | None = None
    patient_id: UUID | None = None
    source: Source | None = None

    def summary(self) -> str:
        return f"Task ({self.priority.value}) for user {self.assignee_id}: {self.title}"


class TaskReassigned(DomainEvent):
    """A pending task moved to another member of staff."""

    timeline_kind: ClassVar[str] = "task"

    assignee_id: int
    patient_id: UUID | None = None

    def summary(self) -> str:
        return f"Task reassigned to user {self.assignee_id}"


class TaskCompleted(DomainEvent):
    """A task was done."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"note"})

    timeline_kind: ClassVar[str] = "task"

    by: int | None
    note: Text | None = None
    patient_id: UUID | None = None

    def summary(self) -> str:
        return "Task completed" + (f": {self.note}" if self.note else "")


class AlertRaised(DomainEvent):
    """Something needs a clinician's attention (a critical lab result, say)."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"message"})

    timeline_kind: ClassVar[str] = "alert"

    clinic_id: UUID
    severity: Severity
    message: Message
    patient_id: UUID | None = None
    source: Source | None = None

    def summary(self) -> str:
        return f"Alert ({self.severity.value}): {self.message}"


class AlertAcknowledged(DomainEvent):
    """Someone took note of an alert."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"note"})

    timeline_kind: ClassVar[str] = "alert"

    by: int | None
    note: Text | None = None
    patient_id: UUID | None = None

    def summary(self) -> str:
        return "Alert acknowledged" + (f": {self.note}" if self.note else "")


class Task(Aggregate):
    """A piece of work for one member of staff, pending until completed."""

    aggregate_type = "Task"
    state_version = 1

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.clinic_id: UUID | None = None
        self.patient_id: UUID | None = None
        self.assignee_id: int | None = None
        self.completed = False

    def assign(self, **fields: Any) -> None:
        """Create the task for its first assignee."""
        if self.exists:
            raise RuleViolated("task already exists", code="already_exists")
        self.record(validate_event(TaskAssigned, fields))

    def reassign(self, assignee_id: int) -> None:
        """Give a pending task to someone else."""
        self._require_pending()
        if assignee_id == self.assignee_id:
            raise RuleViolated("the task is already assigned to that person", code="no_change")
        self.record(validate_event(TaskReassigned, {"assignee_id": assignee_id,
                                                    "patient_id": self.patient_id}))

    def complete(self, *, by: int | None, note: str | None = None) -> None:
        """Mark the task done, once."""
        self._require_pending()
        self.record(validate_event(TaskCompleted, {"by": by, "note": note or None,
                                                   "patient_id": self.patient_id}))

    def _require_pending(self) -> None:
        if self.completed:
            raise RuleViolated("the task is already completed", code="task_completed")

    def when(self, event: DomainEvent) -> None:
        match event:
            case TaskAssigned():
                self.clinic_id, self.patient_id = event.clinic_id, event.patient_id
                self.assignee_id = event.assignee_id
            case TaskReassigned():
                self.assignee_id = event.assignee_id
            case TaskCompleted():
                self.completed = True

    def snapshot_state(self) -> dict[str, Any]:
        return {
            "clinic_id": str(self.clinic_id) if self.clinic_id else None,
            "patient_id": str(self.patient_id) if self.patient_id else None,
            "assignee_id": self.assignee_id, "completed": self.completed,
        }

    @classmethod
    def from_snapshot(cls, aggregate_id: UUID, version: int, state: dict[str, Any]) -> Self:
        task = cls(aggregate_id)
        task.clinic_id = UUID(state["clinic_id"]) if state["clinic_id"] else None
        task.patient_id = UUID(state["patient_id"]) if state["patient_id"] else None
        task.assignee_id, task.completed = state["assignee_id"], state["completed"]
        task.version = version
        return task


class Alert(Aggregate):
    """A notice for a clinic's staff, open until someone acknowledges it."""

    aggregate_type = "Alert"
    state_version = 1

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.clinic_id: UUID | None = None
        self.patient_id: UUID | None = None
        self.acknowledged = False

    def raise_alert(self, **fields: Any) -> None:
        """Raise the alert."""
        if self.exists:
            raise RuleViolated("alert already exists", code="already_exists")
        self.record(validate_event(AlertRaised, fields))

    def acknowledge(self, *, by: int | None, note: str | None = None) -> None:
        """Take note of the alert, once."""
        if self.acknowledged:
            raise RuleViolated("the alert is already acknowledged", code="alert_acknowledged")
        self.record(validate_event(AlertAcknowledged, {"by": by, "note": note or None,
                                                       "patient_id": self.patient_id}))

    def when(self, event: DomainEvent) -> None:
        match event:
            case AlertRaised():
                self.clinic_id, self.patient_id = event.clinic_id, event.patient_id
            case AlertAcknowledged():
                self.acknowledged = True

    def snapshot_state(self) -> dict[str, Any]:
        return {
            "clinic_id": str(self.clinic_id) if self.clinic_id else None,
            "patient_id": str(self.patient_id) if self.patient_id else None,
            "acknowledged": self.acknowledged,
        }

    @classmethod
    def from_snapshot(cls, aggregate_id: UUID, version: int, state: dict[str, Any]) -> Self:
        alert = cls(aggregate_id)
        alert.clinic_id = UUID(state["clinic_id"]) if state["clinic_id"] else None
        alert.patient_id = UUID(state["patient_id"]) if state["patient_id"] else None
        alert.acknowledged = state["acknowledged"]
        alert.version = version
        return alert


__all__ = [
    "Alert", "AlertAcknowledged", "AlertRaised", "Severity", "Task", "TaskAssigned",
    "TaskCompleted", "TaskPriority", "TaskReassigned",
]
