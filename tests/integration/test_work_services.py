"""Work services: task queues, alerts, roles, clinic scope, read models, rebuild."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from medflow.context import Context
from medflow.errors import InvalidInput, NotFound, PermissionDenied, RuleViolated, VersionConflict
from medflow.eventstore import store
from medflow.eventstore.handlers import InlineHandlers, inline
from medflow.eventstore.models import StoredEvent
from medflow.timeline.models import TimelineEntry
from medflow.work import queries
from medflow.work.models import AlertReadModel, TaskReadModel
from medflow.work.services import (
    acknowledge_alert,
    assign_task,
    complete_task,
    raise_alert,
    reassign_task,
)
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db


def staff_ctx(system, clinic, username: str, role: str, *more_clinics) -> Context:
    user = make_staff(system, clinic, username, role)
    return Context(user_id=user.pk, username=username, role=role,
                   clinic_ids=frozenset({clinic.id, *more_clinics}))


@pytest.fixture
def nurse_ctx(system, clinic):
    return staff_ctx(system, clinic, "nurse_ratched", "nurse")


@pytest.fixture
def clerk_ctx(system, clinic):
    return staff_ctx(system, clinic, "clerk", "receptionist")


def in_hours(hours: float):
    return timezone.now() + timedelta(hours=hours)


def test_assign_task_writes_event_and_read_model(doctor_ctx, nurse_ctx, clinic, registered):
    due = in_hours(4)
    result = assign_task(doctor_ctx, assignee_id=nurse_ctx.user_id, title="Repeat BP",
                         details="Left arm", priority="high", due_at=due, patient_id=registered)
    row = TaskReadModel.objects.get(id=result.aggregate_id)
    assert (row.clinic_id, row.assignee_id, row.title, row.priority, row.priority_rank) == (
        clinic.id, nurse_ctx.user_id, "Repeat BP", "high", 1)
    assert (row.due_at, row.patient_id, row.status, row.assigned_by, row.version) == (
        due, registered, "pending", doctor_ctx.user_id, 1)
    assert store.load(result.aggregate_id)[0].metadata["command"] == "AssignTask"
    entry = TimelineEntry.objects.get(event_type="TaskAssigned")
    assert (entry.patient_id, entry.kind) == (registered, "task")


def test_task_without_patient_stays_off_every_timeline(doctor_ctx, nurse_ctx):
    assign_task(doctor_ctx, assignee_id=nurse_ctx.user_id, title="Restock the vaccine fridge")
    assert TaskReadModel.objects.get().patient_id is None
    assert not TimelineEntry.objects.filter(event_type="TaskAssigned").exists()


def test_queue_is_urgent_first_then_soonest_due_with_undated_last(doctor_ctx, nurse_ctx):
    def task(title, priority, due=None):
        return assign_task(doctor_ctx, assignee_id=nurse_ctx.user_id, title=title,
                           priority=priority, due_at=due).aggregate_id

    task("low", "low", in_hours(1))
    task("normal undated", "normal")
    task("normal later", "normal", in_hours(8))
    task("urgent undated", "urgent")
    task("normal soon", "normal", in_hours(2))
    task("urgent soon", "urgent", in_hours(3))
    done = task("high done", "high")
    complete_task(nurse_ctx, done, expected_version=1)
    assign_task(doctor_ctx, assignee_id=doctor_ctx.user_id, title="mine", priority="urgent")
    count, rows = queries.task_queue(nurse_ctx)
    assert count == 6
    assert [r.title for r in rows] == ["urgent soon", "urgent undated", "normal soon",
                                       "normal later", "normal undated", "low"]
    assert [r.title for r in queries.task_queue(nurse_ctx, status="completed")[1]] == [
        "high done"]
    assert queries.task_queue(nurse_ctx, status="all")[0] == 7
    assert [r.title for r in queries.task_queue(nurse_ctx, assignee_id=doctor_ctx.user_id)[1]] == [
        "mine"]
    assert [r.title for r in queries.task_queue(nurse_ctx, limit=2, offset=1)[1]] == [
        "urgent undated", "normal soon"]
    with pytest.raises(InvalidInput) as err:
        queries.task_queue(nurse_ctx, status="open")
    assert err.value.field == "status"


def test_complete_once_with_version_check(doctor_ctx, nurse_ctx):
    task_id = assign_task(doctor_ctx, assignee_id=nurse_ctx.user_id, title="T").aggregate_id
    with pytest.raises(VersionConflict):
        complete_task(nurse_ctx, task_id, expected_version=2)
    complete_task(nurse_ctx, task_id, note="done", expected_version=1)
    row = TaskReadModel.objects.get(id=task_id)
    assert (row.status, row.completed_by, row.completion_note, row.version) == (
        "completed", nurse_ctx.user_id, "done", 2)
    assert row.completed_at is not None
    before = StoredEvent.objects.count()
    with pytest.raises(RuleViolated) as err:
        complete_task(nurse_ctx, task_id, expected_version=None)
    assert err.value.code == "task_completed"
    assert StoredEvent.objects.count() == before


def test_who_may_complete_or_hand_on_a_task(doctor_ctx, nurse_ctx, clerk_ctx):
    nurses = assign_task(doctor_ctx, assignee_id=nurse_ctx.user_id, title="T").aggregate_id
    clerks = assign_task(doctor_ctx, assignee_id=clerk_ctx.user_id, title="Call").aggregate_id
    with pytest.raises(PermissionDenied):
        complete_task(clerk_ctx, nurses, expected_version=1)
    with pytest.raises(PermissionDenied):
        reassign_task(clerk_ctx, nurses, clerk_ctx.user_id, expected_version=1)
    complete_task(clerk_ctx, clerks, expected_version=1)
    reassign_task(doctor_ctx, nurses, clerk_ctx.user_id, expected_version=1)
    row = TaskReadModel.objects.get(id=nurses)
    assert (row.assignee_id, row.version, row.status) == (clerk_ctx.user_id, 2, "pending")
    complete_task(clerk_ctx, nurses, expected_version=2)


def test_assignees_must_work_in_the_clinic(doctor_ctx, system, other_clinic, nurse_ctx):
    outsider = make_staff(system, other_clinic, "dr_far", "doctor")
    before = StoredEvent.objects.count()
    for assignee in (outsider.pk, 999999):
        with pytest.raises(InvalidInput) as err:
            assign_task(doctor_ctx, assignee_id=assignee, title="T")
        assert err.value.field == "assignee_id"
    task_id = assign_task(doctor_ctx, assignee_id=nurse_ctx.user_id, title="T").aggregate_id
    with pytest.raises(InvalidInput):
        reassign_task(doctor_ctx, task_id, outsider.pk, expected_version=1)
    assert StoredEvent.objects.count() == before + 1


def test_clinic_scope(doctor_ctx, nurse_ctx, system, clinic, other_clinic, registered):
    stranger = staff_ctx(system, other_clinic, "dr_stranger", "doctor")
    task_id = assign_task(doctor_ctx, assignee_id=nurse_ctx.user_id, title="T").aggregate_id
    alert_id = raise_alert(doctor_ctx, severity="warning", message="M").aggregate_id
    before = StoredEvent.objects.count()
    for attempt in (
        lambda: assign_task(stranger, assignee_id=stranger.user_id, title="T",
                            patient_id=registered),
        lambda: assign_task(stranger, assignee_id=stranger.user_id, title="T",
                            clinic_id=clinic.id),
        lambda: complete_task(stranger, task_id, expected_version=1),
        lambda: reassign_task(stranger, task_id, stranger.user_id, expected_version=1),
        lambda: acknowledge_alert(stranger, alert_id, expected_version=1),
        lambda: raise_alert(stranger, severity="info", message="M", patient_id=registered),
        lambda: queries.get_task(stranger, task_id),
        lambda: queries.get_alert(stranger, alert_id),
        lambda: queries.alert_list(stranger, patient_id=registered),
    ):
        with pytest.raises(NotFound):
            attempt()
    assert StoredEvent.objects.count() == before
    assert queries.task_queue(stranger, assignee_id=nurse_ctx.user_id) == (0, [])
    assert queries.alert_list(stranger) == (0, [])


def test_task_clinic_follows_the_patient_or_the_caller(doctor_ctx, system, clinic, other_clinic,
                                                       registered):
    with pytest.raises(InvalidInput) as err:
        assign_task(doctor_ctx, assignee_id=doctor_ctx.user_id, title="T",
                    patient_id=registered, clinic_id=other_clinic.id)
    assert err.value.field == "clinic_id"
    roamer = staff_ctx(system, clinic, "dr_roam", "doctor", other_clinic.id)
    with pytest.raises(InvalidInput) as err:
        assign_task(roamer, assignee_id=roamer.user_id, title="T")
    assert err.value.field == "clinic_id"
    task_id = assign_task(roamer, assignee_id=roamer.user_id, title="T",
                          clinic_id=clinic.id).aggregate_id
    assert TaskReadModel.objects.get(id=task_id).clinic_id == clinic.id


def test_alerts_raise_list_acknowledge(doctor_ctx, nurse_ctx, clerk_ctx, registered):
    info = raise_alert(doctor_ctx, severity="info", message="Flu clinic Friday").aggregate_id
    critical = raise_alert(nurse_ctx, severity="critical", message="K 6.8",
                           patient_id=registered, source="manual").aggregate_id
    warning = raise_alert(doctor_ctx, severity="warning", message="Fridge 9 C").aggregate_id
    count, rows = queries.alert_list(nurse_ctx)
    assert count == 3 and [r.id for r in rows] == [critical, warning, info]
    assert [r.id for r in queries.alert_list(nurse_ctx, patient_id=registered)[1]] == [critical]
    with pytest.raises(PermissionDenied):
        raise_alert(clerk_ctx, severity="info", message="M")
    with pytest.raises(PermissionDenied):
        acknowledge_alert(clerk_ctx, critical, expected_version=1)
    acknowledge_alert(doctor_ctx, critical, note="called the patient", expected_version=1)
    row = AlertReadModel.objects.get(id=critical)
    assert (row.status, row.acknowledged_by, row.acknowledgement_note, row.version) == (
        "acknowledged", doctor_ctx.user_id, "called the patient", 2)
    with pytest.raises(RuleViolated) as err:
        acknowledge_alert(nurse_ctx, critical, expected_version=2)
    assert err.value.code == "alert_acknowledged"
    assert [r.id for r in queries.alert_list(nurse_ctx)[1]] == [warning, info]
    assert [r.id for r in queries.alert_list(nurse_ctx, status="acknowledged")[1]] == [critical]
    assert queries.alert_list(nurse_ctx, status="all")[0] == 3
    assert TimelineEntry.objects.filter(patient_id=registered, kind="alert").count() == 2


def test_retried_command_id_assigns_once(doctor_ctx, nurse_ctx):
    command = uuid.uuid4()
    first = assign_task(doctor_ctx, assignee_id=nurse_ctx.user_id, title="T", command_id=command)
    again = assign_task(doctor_ctx, assignee_id=nurse_ctx.user_id, title="T", command_id=command)
    assert (again.aggregate_id, again.replayed) == (first.aggregate_id, True)
    assert TaskReadModel.objects.count() == 1


def _work_only() -> InlineHandlers:
    mine = InlineHandlers()
    for event_type, handlers in inline._handlers.items():
        for handler in handlers:
            if handler.__module__ == "medflow.work.projections":
                mine._handlers[event_type].append(handler)
    return mine


def test_read_models_equal_a_fresh_replay_of_the_log(doctor_ctx, nurse_ctx, registered):
    a = assign_task(doctor_ctx, assignee_id=nurse_ctx.user_id, title="A", due_at=in_hours(1),
                    patient_id=registered, source="manual").aggregate_id
    b = assign_task(doctor_ctx, assignee_id=nurse_ctx.user_id, title="B").aggregate_id
    assign_task(doctor_ctx, assignee_id=doctor_ctx.user_id, title="C", priority="urgent")
    reassign_task(doctor_ctx, a, doctor_ctx.user_id, expected_version=1)
    complete_task(nurse_ctx, b, note="ok", expected_version=1)
    x = raise_alert(doctor_ctx, severity="critical", message="X", patient_id=registered)
    raise_alert(doctor_ctx, severity="info", message="Y")
    acknowledge_alert(nurse_ctx, x.aggregate_id, note="seen", expected_version=1)

    def dump():
        return (list(TaskReadModel.objects.order_by("id").values()),
                list(AlertReadModel.objects.order_by("id").values()))

    before = dump()
    assert len(before[0]) == 3 and len(before[1]) == 2
    TaskReadModel.objects.all().delete()
    AlertReadModel.objects.all().delete()
    _work_only().dispatch(list(store.iter_all()))
    assert dump() == before
