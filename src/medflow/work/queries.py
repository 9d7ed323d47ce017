"""Read side of the work context: work queues and alerts of the caller's clinics."""

from uuid import UUID

from django.db.models import F, QuerySet

from medflow.access.models import Membership
from medflow.context import Context
from medflow.errors import InvalidInput, NotFound
from medflow.patients.queries import can_see_clinic, get_patient
from medflow.work.models import AlertReadModel, TaskReadModel

TASK_STATUSES = ("pending", "completed", "all")
ALERT_STATUSES = ("unacknowledged", "acknowledged", "all")


def is_staff(clinic_id: UUID, user_id: int | None) -> bool:
    """Tell whether a user has a role in a clinic."""
    return user_id is not None and Membership.objects.filter(
        clinic_id=clinic_id, user_id=user_id
    ).exists()


def visible_tasks(ctx: Context) -> QuerySet[TaskReadModel]:
    """Return the tasks of the caller's clinics."""
    rows = TaskReadModel.objects.all()
    return rows if ctx.role == "system" else rows.filter(clinic_id__in=ctx.clinic_ids)


def visible_alerts(ctx: Context) -> QuerySet[AlertReadModel]:
    """Return the alerts of the caller's clinics."""
    rows = AlertReadModel.objects.all()
    return rows if ctx.role == "system" else rows.filter(clinic_id__in=ctx.clinic_ids)


def note_patient_reads(ctx: Context, rows) -> None:
    """Log, as reads of patient data, the tasks or alerts about a patient that a caller sees."""
    for patient_id, clinic_id in dict.fromkeys((r.patient_id, r.clinic_id) for r in rows):
        if patient_id is not None:
            ctx.note_read(patient_id, clinic_id)


def get_task(ctx: Context, task_id: UUID) -> TaskReadModel:
    """Return a task of the caller's clinics; any other answers "not found"."""
    row = visible_tasks(ctx).filter(id=task_id).first()
    if row is None:
        raise NotFound(f"no Task {task_id}", field="id")
    note_patient_reads(ctx, [row])
    return row


def get_alert(ctx: Context, alert_id: UUID) -> AlertReadModel:
    """Return an alert of the caller's clinics; any other answers "not found"."""
    row = visible_alerts(ctx).filter(id=alert_id).first()
    if row is None:
        raise NotFound(f"no Alert {alert_id}", field="id")
    note_patient_reads(ctx, [row])
    return row


def task_queue(
    ctx: Context, *, assignee_id: int | None = None, status: str = "pending",
    limit: int = 100, offset: int = 0,
) -> tuple[int, list[TaskReadModel]]:
    """Return a person's tasks (default: the caller's), urgent first, then soonest due (undated
    last), then oldest; with the total."""
    if status not in TASK_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(TASK_STATUSES)}", field="status")
    assignee_id = assignee_id if assignee_id is not None else ctx.user_id
    rows = visible_tasks(ctx).filter(assignee_id=assignee_id)
    if status != "all":
        rows = rows.filter(status=status)
    rows = rows.order_by("priority_rank", F("due_at").asc(nulls_last=True), "assigned_at", "id")
    page = list(rows[offset:offset + limit])
    note_patient_reads(ctx, page)
    return rows.count(), page


def alert_list(
    ctx: Context, *, status: str = "unacknowledged", patient_id: UUID | None = None,
    limit: int = 100, offset: int = 0,
) -> tuple[int, list[AlertReadModel]]:
    """Return alerts of the caller's clinics, most severe first, then longest waiting."""
    if status not in ALERT_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(ALERT_STATUSES)}", field="status")
    rows = visible_alerts(ctx)
    if patient_id is not None:
        get_patient(ctx, patient_id)
        rows = rows.filter(patient_id=patient_id)
    if status != "all":
        rows = rows.filter(status=status)
    rows = rows.order_by("severity_rank", "raised_at", "id")
    page = list(rows[offset:offset + limit])
    note_patient_reads(ctx, page)
    return rows.count(), page


def resolve_clinic(ctx: Context, clinic_id: UUID | None, patient_id: UUID | None) -> UUID:
    """Return the clinic a new task or alert belongs to: the patient's, the one named, or the
    caller's only clinic."""
    if patient_id is not None:
        patient_clinic = UUID(get_patient(ctx, patient_id).data["clinic_id"])
        if clinic_id is not None and clinic_id != patient_clinic:
            raise InvalidInput("clinic_id must be the patient's clinic", field="clinic_id")
        return patient_clinic
    if clinic_id is None:
        if len(ctx.clinic_ids) != 1:
            raise InvalidInput("clinic_id is required when you work in several clinics",
                               field="clinic_id")
        clinic_id = next(iter(ctx.clinic_ids))
    if not can_see_clinic(ctx, clinic_id):
        raise NotFound(f"no clinic {clinic_id}", field="clinic_id")
    return clinic_id
