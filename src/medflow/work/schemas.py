"""Request and response schemas of the work API. Inputs forbid unknown fields."""

from datetime import datetime
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict

from medflow.work.domain import Severity, TaskPriority


class StrictIn(Schema):
    model_config = ConfigDict(extra="forbid")


class TaskIn(StrictIn):
    assignee_id: int
    title: str
    details: str = ""
    priority: TaskPriority = TaskPriority.NORMAL
    due_at: datetime | None = None
    patient_id: UUID | None = None
    clinic_id: UUID | None = None
    source: str | None = None


class TaskCompleteIn(StrictIn):
    note: str | None = None


class TaskReassignIn(StrictIn):
    assignee_id: int


class AlertAcknowledgeIn(StrictIn):
    note: str | None = None


class TaskOut(Schema):
    id: UUID
    clinic_id: UUID
    assignee_id: int
    title: str
    details: str
    priority: TaskPriority
    due_at: datetime | None
    patient_id: UUID | None
    source: str
    status: str
    assigned_at: datetime
    assigned_by: int | None
    completed_at: datetime | None
    completed_by: int | None
    completion_note: str
    version: int


class TaskListOut(Schema):
    items: list[TaskOut]
    count: int
    limit: int
    offset: int


class AlertOut(Schema):
    id: UUID
    clinic_id: UUID
    patient_id: UUID | None
    severity: Severity
    message: str
    source: str
    status: str
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: int | None
    acknowledgement_note: str
    version: int


class AlertListOut(Schema):
    items: list[AlertOut]
    count: int
    limit: int
    offset: int
