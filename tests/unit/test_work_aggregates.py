"""Given/when/then tests of the Task and Alert aggregates: no database."""

import uuid
from datetime import UTC, datetime

import pytest

from medflow.errors import InvalidInput, RuleViolated
from medflow.work.domain import (
    Alert,
    AlertAcknowledged,
    AlertRaised,
    Task,
    TaskAssigned,
    TaskCompleted,
    TaskReassigned,
)

CLINIC = uuid.uuid4()
PATIENT = uuid.uuid4()
ASSIGNED = TaskAssigned(clinic_id=CLINIC, assignee_id=7, title="Call back", priority="high",
                        patient_id=PATIENT)
RAISED = AlertRaised(clinic_id=CLINIC, severity="critical", message="K 6.8", patient_id=PATIENT)


def task(*events) -> Task:
    return Task.replay(uuid.uuid4(), events)


def alert(*events) -> Alert:
    return Alert.replay(uuid.uuid4(), events)


def test_assign_records_task_assigned():
    t = task()
    t.assign(clinic_id=CLINIC, assignee_id=7, title=" Call back ", priority="high",
             patient_id=PATIENT)
    assert t.pending == [ASSIGNED]
    assert ASSIGNED.summary() == "Task (high) for user 7: Call back"
    assert ASSIGNED.timeline_kind == "task"


def test_a_task_need_not_concern_a_patient():
    t = task()
    t.assign(clinic_id=CLINIC, assignee_id=7, title="Restock the vaccine fridge")
    assert t.pending[0].patient_id is None and t.pending[0].priority == "normal"


@pytest.mark.parametrize(("fields", "field"), [
    ({"title": " "}, "title"),
    ({"priority": "asap"}, "priority"),
    ({"assignee_id": "nobody"}, "assignee_id"),
    ({"due_at": datetime(2026, 1, 1, 9, 0)}, "due_at"),
    ({"colour": "red"}, "colour"),
])
def test_assign_refuses_bad_input_naming_the_field(fields, field):
    with pytest.raises(InvalidInput) as err:
        task().assign(**{"clinic_id": CLINIC, "assignee_id": 7, "title": "T", **fields})
    assert err.value.field == field


def test_complete_once_only():
    t = task(ASSIGNED)
    t.complete(by=7, note="done, patient informed")
    assert t.pending == [TaskCompleted(by=7, note="done, patient informed", patient_id=PATIENT)]
    with pytest.raises(RuleViolated) as err:
        task(ASSIGNED, TaskCompleted(by=7)).complete(by=7)
    assert err.value.code == "task_completed"


def test_reassign_needs_a_different_person_and_a_pending_task():
    t = task(ASSIGNED)
    t.reassign(8)
    assert t.pending == [TaskReassigned(assignee_id=8, patient_id=PATIENT)]
    assert t.assignee_id == 8
    with pytest.raises(RuleViolated) as err:
        task(ASSIGNED).reassign(7)
    assert err.value.code == "no_change"
    with pytest.raises(RuleViolated) as err:
        task(ASSIGNED, TaskCompleted(by=7)).reassign(8)
    assert err.value.code == "task_completed"


def test_raise_and_acknowledge_once_only():
    a = alert()
    a.raise_alert(clinic_id=CLINIC, severity="critical", message="K 6.8", patient_id=PATIENT)
    assert a.pending == [RAISED]
    assert RAISED.summary() == "Alert (critical): K 6.8"
    a = alert(RAISED)
    a.acknowledge(by=7)
    assert a.pending == [AlertAcknowledged(by=7, patient_id=PATIENT)]
    with pytest.raises(RuleViolated) as err:
        alert(RAISED, AlertAcknowledged(by=7)).acknowledge(by=8)
    assert err.value.code == "alert_acknowledged"
    with pytest.raises(RuleViolated):
        alert(RAISED).raise_alert(clinic_id=CLINIC, severity="info", message="again")


@pytest.mark.parametrize(("fields", "field"), [
    ({"severity": "loud"}, "severity"), ({"message": ""}, "message"),
])
def test_raise_refuses_bad_input_naming_the_field(fields, field):
    with pytest.raises(InvalidInput) as err:
        alert().raise_alert(**{"clinic_id": CLINIC, "severity": "info", "message": "m", **fields})
    assert err.value.field == field


def test_states_survive_a_snapshot_round_trip():
    t = task(ASSIGNED, TaskReassigned(assignee_id=8))
    copy = Task.from_snapshot(t.id, t.version, t.snapshot_state())
    assert (copy.assignee_id, copy.patient_id, copy.completed, copy.version) == (
        8, PATIENT, False, 2)
    a = alert(RAISED, AlertAcknowledged(by=7))
    copy = Alert.from_snapshot(a.id, a.version, a.snapshot_state())
    assert (copy.clinic_id, copy.acknowledged, copy.version) == (CLINIC, True, 2)


def test_due_at_must_carry_a_zone_and_keeps_it():
    due = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    t = task()
    t.assign(clinic_id=CLINIC, assignee_id=7, title="T", due_at=due)
    assert t.pending[0].due_at == due
