"""Given/when/then tests of the LabOrder aggregate: no database."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from medflow.errors import Conflict, InvalidInput, NotFound, RuleViolated
from medflow.labs.domain import (
    AbnormalFlag,
    LabOrder,
    LabOrderCancelled,
    LabOrderPlaced,
    LabResultCancelled,
    LabResultRecorded,
    LabResultUpdated,
    LabTest,
    loinc_check_digit_ok,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TAKEN = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
PATIENT = uuid.uuid4()
CLINIC = uuid.uuid4()
RESULT = uuid.uuid4()
PLACED = LabOrderPlaced(
    patient_id=PATIENT, clinic_id=CLINIC, ordering_provider_id=7,
    tests=[LabTest(loinc_code="2823-3", display="Potassium")], priority="stat",
)
POTASSIUM = {"loinc_code": "2823-3", "display": "Potassium", "unit": "mmol/L",
             "reference_low": 3.5, "reference_high": 5.1, "effective_at": TAKEN}
RECORDED = LabResultRecorded(patient_id=PATIENT, result_id=RESULT, value=4.2, abnormal_flag="N",
                             **POTASSIUM)


def given(*events) -> LabOrder:
    return LabOrder.replay(uuid.uuid4(), events)


def recorded_by(order: LabOrder):
    assert len(order.pending) == 1
    return order.pending[0]


# Placing ------------------------------------------------------------------------------------

def test_place_records_lab_order_placed():
    order = given()
    order.place(patient_id=PATIENT, clinic_id=CLINIC, ordering_provider_id=7,
                tests=[{"loinc_code": " 2823-3 ", "display": "Potassium"}], priority="stat")
    assert order.pending == [PLACED]
    assert PLACED.summary() == "Lab order (stat): Potassium"


@pytest.mark.parametrize(("tests", "field"), [
    ([], "tests"),
    ([{"loinc_code": "2823", "display": "K"}], "tests.0.loinc_code"),
    ([{"loinc_code": "2823-4", "display": "K"}], "tests.0.loinc_code"),
    ([{"loinc_code": "2823-3", "display": " "}], "tests.0.display"),
    ([{"loinc_code": "2823-3", "display": "K"}, {"loinc_code": "2823-3", "display": "K"}],
     "tests.1.loinc_code"),
])
def test_place_refuses_bad_tests_naming_the_field(tests, field):
    with pytest.raises(InvalidInput) as err:
        given().place(patient_id=PATIENT, clinic_id=CLINIC, ordering_provider_id=7, tests=tests)
    assert err.value.field == field


def test_place_refuses_unknown_priority_and_a_second_placement():
    with pytest.raises(InvalidInput) as err:
        given().place(patient_id=PATIENT, clinic_id=CLINIC, ordering_provider_id=7,
                      tests=[{"loinc_code": "2823-3", "display": "K"}], priority="asap")
    assert err.value.field == "priority"
    with pytest.raises(RuleViolated) as err:
        given(PLACED).place(patient_id=PATIENT, clinic_id=CLINIC, ordering_provider_id=7,
                            tests=[{"loinc_code": "2823-3", "display": "K"}])
    assert err.value.code == "already_placed"


@pytest.mark.parametrize(("code", "ok"), [
    ("2345-7", True), ("2823-3", True), ("4548-4", True), ("718-7", True), ("2345-6", False),
])
def test_loinc_check_digit(code, ok):
    assert loinc_check_digit_ok(code) is ok


# Recording ----------------------------------------------------------------------------------

def record(order: LabOrder, **fields):
    order.record_result(result_id=RESULT, now=NOW, **{**POTASSIUM, **fields})
    return recorded_by(order)


def test_record_result_computes_the_flag_and_keeps_the_specimen_time():
    event = record(given(PLACED), value=4.2)
    assert event == RECORDED
    assert event.effective_time_field == "effective_at" and event.timeline_kind == "lab"
    assert event.summary() == "Potassium 4.2 mmol/L"


@pytest.mark.parametrize(("value", "flag"), [
    (2.4, "LL"), (2.5, "LL"), (2.6, "L"), (3.4, "L"), (3.5, "N"), (5.1, "N"), (5.2, "H"),
    (6.4, "H"), (6.5, "HH"), (9.0, "HH"),
])
def test_flag_rule_reference_limits_normal_critical_limits_critical(value, flag):
    event = record(given(PLACED), value=value, critical_low=2.5, critical_high=6.5)
    assert event.abnormal_flag == AbnormalFlag(flag)


def test_without_limits_or_flag_the_flag_stays_unset():
    event = record(given(PLACED), value=4.2, reference_low=None, reference_high=None)
    assert event.abnormal_flag is None


def test_a_given_flag_is_kept_unless_it_hides_a_critical_value():
    assert record(given(PLACED), value=5.0, abnormal_flag="H").abnormal_flag == "H"
    assert record(given(PLACED), value_text="haemolysed", abnormal_flag="A").abnormal_flag == "A"
    assert record(given(PLACED), value=7.0, abnormal_flag="HH", reference_high=None,
                  reference_low=None).abnormal_flag == "HH"
    with pytest.raises(InvalidInput) as err:
        record(given(PLACED), value=7.0, critical_high=6.5, abnormal_flag="H")
    assert err.value.field == "abnormal_flag" and "mmol/L" in err.value.message


@pytest.mark.parametrize(("fields", "field"), [
    ({"value": "4.2"}, "value"),
    ({"value": True}, "value"),
    ({}, "value"),
    ({"value": 4.2, "value_text": "4.2"}, "value_text"),
    ({"value": 4.2, "loinc_code": "potassium"}, "loinc_code"),
    ({"value": 4.2, "loinc_code": "2823-2"}, "loinc_code"),
    ({"value": 4.2, "unit": "milli mol"}, "unit"),
    ({"value": 4.2, "reference_high": 3.0}, "reference_high"),
    ({"value": 4.2, "critical_high": 5.0}, "critical_high"),
    ({"value": 4.2, "critical_low": 3.6}, "reference_low"),
    ({"value": 4.2, "abnormal_flag": "X"}, "abnormal_flag"),
    ({"value": 4.2, "effective_at": NOW + timedelta(hours=1)}, "effective_at"),
    ({"value": 4.2, "effective_at": datetime(2026, 3, 1, 8, 30)}, "effective_at"),
    ({"value": 4.2, "colour": "red"}, "colour"),
])
def test_record_refuses_bad_values_naming_the_field(fields, field):
    order = given(PLACED)
    with pytest.raises(InvalidInput) as err:
        record(order, **fields)
    assert err.value.field == field
    assert order.pending == []


def test_limits_out_of_order_name_the_unit():
    with pytest.raises(InvalidInput) as err:
        record(given(PLACED), value=4.2, reference_high=3.0)
    assert "3 mmol/L" in err.value.message and "3.5 mmol/L" in err.value.message


def test_a_slightly_fast_instrument_clock_is_tolerated():
    assert record(given(PLACED), value=4.2, effective_at=NOW + timedelta(minutes=2))


def test_no_result_on_a_cancelled_order_nor_twice_the_same_id():
    with pytest.raises(RuleViolated) as err:
        record(given(PLACED, LabOrderCancelled(patient_id=PATIENT, reason="duplicate")), value=4.2)
    assert err.value.code == "order_cancelled"
    with pytest.raises(Conflict) as err:
        record(given(PLACED, RECORDED), value=4.3)
    assert err.value.code == "result_exists"


# Correcting ---------------------------------------------------------------------------------

def correct(order: LabOrder, reason="transcription error", **changes):
    order.correct_result(RESULT, changes, reason=reason, now=NOW)
    return recorded_by(order)


def test_correction_carries_the_whole_corrected_result_and_recomputes_the_flag():
    event = correct(given(PLACED, RECORDED), value=5.4)
    assert isinstance(event, LabResultUpdated)
    assert (event.value, event.unit, event.abnormal_flag, event.reason) == (
        5.4, "mmol/L", AbnormalFlag.HIGH, "transcription error")
    assert (event.loinc_code, event.reference_low, event.effective_at) == ("2823-3", 3.5, TAKEN)
    assert event.summary() == "Potassium corrected to 5.4 mmol/L (H): transcription error"


def test_correction_state_is_what_the_next_command_sees():
    order = given(PLACED, RECORDED)
    correct(order, value=5.4)
    order.pending.clear()
    with pytest.raises(RuleViolated) as err:
        correct(order, value=5.4)
    assert err.value.code == "no_change"
    assert order.results[str(RESULT)]["status"] == "corrected"


def test_a_correction_must_change_something():
    with pytest.raises(RuleViolated) as err:
        correct(given(PLACED, RECORDED), value=4.2, unit="mmol/L")
    assert err.value.code == "no_change"


def test_a_correction_needs_a_reason_and_only_correctable_fields():
    with pytest.raises(InvalidInput) as err:
        correct(given(PLACED, RECORDED), reason="  ", value=5.0)
    assert err.value.field == "reason"
    with pytest.raises(InvalidInput) as err:
        correct(given(PLACED, RECORDED), loinc_code="2345-7")
    assert err.value.field == "loinc_code"
    with pytest.raises(InvalidInput) as err:
        correct(given(PLACED, RECORDED), value="five")
    assert err.value.field == "value"


def test_a_number_replaces_a_text_value_and_back():
    text = LabResultRecorded(patient_id=PATIENT, result_id=RESULT, loinc_code="2823-3",
                             display="Potassium", value_text="haemolysed", abnormal_flag="A",
                             effective_at=TAKEN)
    event = correct(given(PLACED, text), value=4.0, reference_low=3.5, reference_high=5.1)
    assert (event.value, event.value_text, event.abnormal_flag) == (4.0, None, "N")
    event = correct(given(PLACED, RECORDED), value_text="clotted")
    assert (event.value, event.value_text, event.abnormal_flag) == (None, "clotted", None)


def test_a_given_flag_stands_when_the_value_does_not_change_and_nothing_recomputes_it():
    text = LabResultRecorded(patient_id=PATIENT, result_id=RESULT, loinc_code="2823-3",
                             display="Potassium", value_text="positive", abnormal_flag="A",
                             effective_at=TAKEN)
    assert correct(given(PLACED, text), unit="{titer}").abnormal_flag == "A"


def test_unknown_or_cancelled_results_cannot_be_corrected_or_cancelled():
    cancelled = LabResultCancelled(patient_id=PATIENT, result_id=RESULT, loinc_code="2823-3",
                                   display="Potassium", reason="wrong patient")
    with pytest.raises(NotFound) as err:
        given(PLACED).correct_result(RESULT, {"value": 1.0}, reason="x", now=NOW)
    assert err.value.field == "result_id"
    with pytest.raises(NotFound):
        given(PLACED).cancel_result(RESULT, reason="x")
    for act in (lambda o: correct(o, value=5.0), lambda o: o.cancel_result(RESULT, reason="x")):
        with pytest.raises(RuleViolated) as err:
            act(given(PLACED, RECORDED, cancelled))
        assert err.value.code == "result_cancelled"


# Cancelling ---------------------------------------------------------------------------------

def test_cancel_result_records_why():
    order = given(PLACED, RECORDED)
    order.cancel_result(RESULT, reason="wrong patient")
    assert recorded_by(order) == LabResultCancelled(
        patient_id=PATIENT, result_id=RESULT, loinc_code="2823-3", display="Potassium",
        reason="wrong patient")
    with pytest.raises(InvalidInput) as err:
        given(PLACED, RECORDED).cancel_result(RESULT, reason="")
    assert err.value.field == "reason"


def test_an_order_with_a_standing_result_cannot_be_cancelled():
    with pytest.raises(RuleViolated) as err:
        given(PLACED, RECORDED).cancel(reason="not needed")
    assert err.value.code == "order_has_results"
    cancelled_result = LabResultCancelled(patient_id=PATIENT, result_id=RESULT,
                                          loinc_code="2823-3", display="Potassium", reason="x")
    order = given(PLACED, RECORDED, cancelled_result)
    order.cancel(reason="not needed")
    assert recorded_by(order) == LabOrderCancelled(patient_id=PATIENT, reason="not needed")
    with pytest.raises(RuleViolated) as err:
        given(PLACED, LabOrderCancelled(patient_id=PATIENT, reason="x")).cancel(reason="again")
    assert err.value.code == "order_cancelled"


def test_state_survives_a_snapshot_round_trip():
    order = given(PLACED, RECORDED)
    correct(order, value=6.0)
    order.pending.clear()
    order.version += 1
    copy = LabOrder.from_snapshot(order.id, order.version, order.snapshot_state())
    assert copy.state() == order.state() and copy.version == 3
    assert copy.results[str(RESULT)]["abnormal_flag"] == "H"
