"""Application services of the work context: the only writers of task and alert streams."""

from typing import Any
from uuid import UUID, uuid4

from medflow.context import Context, require_permission
from medflow.errors import InvalidInput, PermissionDenied
from medflow.eventstore.commands import CommandResult, execute
from medflow.work.domain import Alert, Task
from medflow.work.queries import get_alert, get_task, is_staff, resolve_clinic

# Besides the assignee, these may complete or hand on someone's task (cover, shift change).
SUPERVISING_ROLES = ("doctor", "nurse", "admin")


def assign_task(
    ctx: Context, *, assignee_id: int, clinic_id: UUID | None = None,
    patient_id: UUID | None = None, task_id: UUID | None = None, command_id: UUID | None = None,
    **fields: Any,
) -> CommandResult:
    """Give a member of a clinic's staff a task, about a patient of that clinic or about none."""
    require_permission(ctx, "work.assign_task")
    clinic_id = resolve_clinic(ctx, clinic_id, patient_id)
    _require_staff(clinic_id, assignee_id, "assignee_id")
    data = {"clinic_id": clinic_id, "assignee_id": assignee_id, **fields}
    if patient_id is not None:
        data["patient_id"] = patient_id
    return execute(
        ctx, Task, task_id or uuid4(), lambda task: task.assign(**data), command="AssignTask",
        create=True, clinic_id=clinic_id, command_id=command_id,
    )


def reassign_task(
    ctx: Context, task_id: UUID, assignee_id: int, *, expected_version: int | None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Hand a pending task to another member of its clinic's staff."""
    row = get_task(ctx, task_id)
    _require_staff(row.clinic_id, assignee_id, "assignee_id")

    def decide(task: Task) -> None:
        _require_may_handle(ctx, task)
        task.reassign(assignee_id)

    return execute(
        ctx, Task, task_id, decide, command="ReassignTask", expected_version=expected_version,
        command_id=command_id,
    )


def complete_task(
    ctx: Context, task_id: UUID, *, note: str | None = None, expected_version: int | None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Mark a task done (its assignee, or a doctor, nurse or admin of its clinic)."""
    get_task(ctx, task_id)

    def decide(task: Task) -> None:
        _require_may_handle(ctx, task)
        task.complete(by=ctx.user_id, note=note)

    return execute(
        ctx, Task, task_id, decide, command="CompleteTask", expected_version=expected_version,
        command_id=command_id,
    )


def raise_alert(
    ctx: Context, *, severity: str, message: str, clinic_id: UUID | None = None,
    patient_id: UUID | None = None, source: str | None = None, alert_id: UUID | None = None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Raise an alert for a clinic's staff, about a patient of that clinic or about none."""
    require_permission(ctx, "work.raise_alert")
    clinic_id = resolve_clinic(ctx, clinic_id, patient_id)
    data: dict[str, Any] = {"clinic_id": clinic_id, "severity": severity, "message": message}
    if patient_id is not None:
        data["patient_id"] = patient_id
    if source is not None:
        data["source"] = source
    return execute(
        ctx, Alert, alert_id or uuid4(), lambda alert: alert.raise_alert(**data),
        command="RaiseAlert", create=True, clinic_id=clinic_id, command_id=command_id,
    )


def acknowledge_alert(
    ctx: Context, alert_id: UUID, *, note: str | None = None, expected_version: int | None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Take note of an alert of the caller's clinic."""
    require_permission(ctx, "work.acknowledge_alert")
    get_alert(ctx, alert_id)
    return execute(
        ctx, Alert, alert_id, lambda alert: alert.acknowledge(by=ctx.user_id, note=note),
        command="AcknowledgeAlert", expected_version=expected_version, command_id=command_id,
    )


def _require_staff(clinic_id: UUID, user_id: int, field: str) -> None:
    if not is_staff(clinic_id, user_id):
        raise InvalidInput(f"user {user_id} does not work in this clinic", field=field)


def _require_may_handle(ctx: Context, task: Task) -> None:
    if ctx.user_id is not None and ctx.user_id == task.assignee_id:
        return
    if ctx.role != "system" and ctx.role not in SUPERVISING_ROLES:
        raise PermissionDenied("only the assignee, or a doctor, nurse or admin, may do this",
                               field="role")
