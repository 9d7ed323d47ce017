"""The critical-result process manager: one alert and one urgent task per critical result."""

from datetime import timedelta

import pytest
from django.utils import timezone

from medflow.access.services import revoke_role
from medflow.context import Context
from medflow.eventstore import store
from medflow.eventstore.handlers import InlineHandlers, inline
from medflow.eventstore.models import StoredEvent
from medflow.labs.process import REVIEW_WITHIN, alert_id_for, task_id_for
from medflow.labs.services import correct_lab_result, place_lab_order, record_lab_result
from medflow.timeline.models import TimelineEntry
from medflow.work.models import AlertReadModel, TaskReadModel
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db

POTASSIUM = {"loinc_code": "2823-3", "display": "Potassium", "unit": "mmol/L",
             "reference_low": 3.5, "reference_high": 5.1, "critical_low": 2.5,
             "critical_high": 6.5}


@pytest.fixture
def order(doctor_ctx, registered):
    return place_lab_order(doctor_ctx, registered,
                           tests=[{"loinc_code": "2823-3", "display": "Potassium"}]).aggregate_id


def record(ctx, order_id, value, **fields):
    result = record_lab_result(
        ctx, order_id, **{**POTASSIUM, "value": value,
                          "effective_at": timezone.now() - timedelta(hours=1), **fields})
    return result.events[0]


def labs_handlers() -> InlineHandlers:
    """Return the labs app's inline handlers (read models and process manager) only: the
    timeline's would refuse a second row for the same event."""
    mine = InlineHandlers()
    for event_type, handlers in inline._handlers.items():
        for handler in handlers:
            if handler.__module__.startswith("medflow.labs."):
                mine._handlers[event_type].append(handler)
    return mine


def test_critical_result_raises_one_alert_and_one_task_even_when_redelivered(
        doctor_ctx, doctor, clinic, registered, order):
    recorded = record(doctor_ctx, order, 6.8)
    assert recorded.event.abnormal_flag == "HH"
    alert = AlertReadModel.objects.get()
    assert alert.id == alert_id_for(recorded.id)
    assert (alert.severity, alert.status, alert.patient_id, alert.clinic_id) == (
        "critical", "unacknowledged", registered, clinic.id)
    assert alert.message == "Critical lab result: Potassium 6.8 mmol/L (HH)"
    assert alert.source == f"LabResultRecorded:{recorded.id}"
    task = TaskReadModel.objects.get()
    assert task.id == task_id_for(recorded.id)
    assert (task.assignee_id, task.priority, task.status, task.patient_id, task.clinic_id) == (
        doctor.pk, "urgent", "pending", registered, clinic.id)
    assert task.due_at == recorded.timestamp + REVIEW_WITHIN
    for stream in (alert.id, task.id):
        event = store.load(stream)[0]
        assert event.metadata["causation_id"] == str(recorded.id)
        assert event.metadata["correlation_id"] == recorded.metadata["correlation_id"]
        assert (event.metadata["role"], event.metadata["reason"]) == (
            "system", "critical lab result")
    assert set(TimelineEntry.objects.filter(patient_id=registered).values_list(
        "kind", flat=True)) == {"patient", "lab", "alert", "task"}

    events_before = StoredEvent.objects.count()
    labs_handlers().dispatch([recorded])
    labs_handlers().dispatch([recorded])
    assert StoredEvent.objects.count() == events_before
    assert AlertReadModel.objects.count() == 1 and TaskReadModel.objects.count() == 1


@pytest.mark.parametrize(("value", "fields"), [
    (2.0, {}),                                                     # LL by critical_low
    (7.0, {"critical_high": None, "abnormal_flag": "HH"}),         # HH given by the lab
])
def test_both_critical_flags_and_given_flags_trigger(doctor_ctx, order, value, fields):
    record(doctor_ctx, order, value, **fields)
    assert AlertReadModel.objects.count() == 1 and TaskReadModel.objects.count() == 1


@pytest.mark.parametrize("value", [2.6, 3.0, 4.2, 6.4])
def test_non_critical_results_raise_nothing(doctor_ctx, order, value):
    record(doctor_ctx, order, value)
    assert AlertReadModel.objects.count() == 0 and TaskReadModel.objects.count() == 0


def test_a_correction_into_the_critical_range_alerts_once(doctor_ctx, order):
    recorded = record(doctor_ctx, order, 4.2)
    result_id = recorded.event.result_id
    assert AlertReadModel.objects.count() == 0
    corrected = correct_lab_result(doctor_ctx, order, result_id, {"value": 6.9},
                                   reason="diluted wrongly", expected_version=2)
    alert = AlertReadModel.objects.get()
    assert alert.id == alert_id_for(corrected.events[0].id)
    # Still critical after a second correction: the first alert stands, no new one.
    correct_lab_result(doctor_ctx, order, result_id, {"value": 7.2}, reason="re-run",
                       expected_version=3)
    assert AlertReadModel.objects.count() == 1 and TaskReadModel.objects.count() == 1


def test_when_the_orderer_has_left_the_alert_says_so_and_no_task_is_assigned(
        doctor_ctx, doctor, system, clinic, order):
    revoke_role(system, clinic.id, doctor.username)
    nurse = make_staff(system, clinic, "nurse_joy", "nurse")
    nurse_ctx = Context(user_id=nurse.pk, username="nurse_joy", role="nurse",
                        clinic_ids=frozenset({clinic.id}))
    record(nurse_ctx, order, 1.9)
    alert = AlertReadModel.objects.get()
    assert "no longer works here" in alert.message and alert.severity == "critical"
    assert TaskReadModel.objects.count() == 0
