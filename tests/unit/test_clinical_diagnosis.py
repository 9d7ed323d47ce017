"""Given/when/then tests of the Diagnosis aggregate: no database."""

import uuid
from datetime import date

import pytest

from medflow.clinical.domain import (
    Diagnosis,
    DiagnosisAdded,
    DiagnosisResolved,
    DiagnosisStatusChanged,
)
from medflow.errors import InvalidInput, RuleViolated

TODAY = date(2026, 11, 22)
PATIENT = uuid.uuid4()
ADDED = DiagnosisAdded(patient_id=PATIENT, code_system="ICD-10", code="E11.9",
                       display="Type 2 diabetes mellitus", onset_date=date(2020, 3, 1),
                       recorded_by=7)


def given(*events) -> Diagnosis:
    return Diagnosis.replay(uuid.uuid4(), events)


def add(**changes) -> DiagnosisAdded:
    diagnosis = given()
    fields = {"code_system": "ICD-10", "code": "E11.9", "display": "Type 2 diabetes mellitus",
              "onset_date": "2020-03-01", **changes}
    diagnosis.add(patient_id=PATIENT, today=TODAY, recorded_by=7, **fields)
    return diagnosis.pending[-1]


def test_add_records_diagnosis_added():
    assert add() == ADDED
    assert ADDED.summary() == "Diagnosis: Type 2 diabetes mellitus (ICD-10 E11.9)"


@pytest.mark.parametrize(("system", "code", "stored_system", "stored_code"), [
    ("icd-10", "e11.9", "ICD-10", "E11.9"),
    ("ICD10", "E119", "ICD-10", "E11.9"),
    ("ICD-10", "U07.1", "ICD-10", "U07.1"),
    ("ICD-10", "S72.001A", "ICD-10", "S72.001A"),
    ("ICD-10", "J45", "ICD-10", "J45"),
    ("SNOMED CT", "44054006", "SNOMED CT", "44054006"),
    ("http://snomed.info/sct", "10939881000119104", "SNOMED CT", "10939881000119104"),
    ("sct", "123456", "SNOMED CT", "123456"),
])
def test_code_systems_and_code_shapes_that_are_accepted(system, code, stored_system, stored_code):
    event = add(code_system=system, code=code)
    assert (event.code_system.value, event.code) == (stored_system, stored_code)


@pytest.mark.parametrize(("system", "code", "field"), [
    ("ICD-10", "diabetes", "code"),
    ("ICD-10", "11.9", "code"),
    ("ICD-10", "E1", "code"),
    ("ICD-10", "E11.12345", "code"),
    ("SNOMED CT", "12345", "code"),
    ("SNOMED CT", "0123456", "code"),
    ("SNOMED CT", "1234567890123456789", "code"),
    ("SNOMED CT", "E11.9", "code"),
    ("LOINC", "1234-5", "code_system"),
])
def test_code_shapes_that_are_refused(system, code, field):
    with pytest.raises(InvalidInput) as err:
        add(code_system=system, code=code)
    assert err.value.field == field


@pytest.mark.parametrize(("changes", "field"), [
    ({"display": " "}, "display"),
    ({"clinical_status": "cured"}, "clinical_status"),
    ({"clinical_status": "resolved"}, "clinical_status"),
    ({"onset_date": "2027-01-01"}, "onset_date"),
    ({"onset_date": "last spring"}, "onset_date"),
])
def test_add_refuses_bad_input(changes, field):
    with pytest.raises(InvalidInput) as err:
        add(**changes)
    assert err.value.field == field


def test_add_twice_is_refused():
    with pytest.raises(RuleViolated):
        given(ADDED).add(patient_id=PATIENT, today=TODAY, recorded_by=7, code_system="ICD-10",
                         code="E11.9", display="x")


def test_resolve_records_the_date_and_is_final():
    diagnosis = given(ADDED)
    diagnosis.resolve(resolved_on="2026-11-01", today=TODAY, note="diet controlled")
    assert diagnosis.pending == [
        DiagnosisResolved(patient_id=PATIENT, resolved_on=date(2026, 11, 1), note="diet controlled")
    ]
    assert diagnosis.state()["clinical_status"] == "resolved"
    with pytest.raises(RuleViolated) as err:
        diagnosis.resolve(resolved_on=TODAY, today=TODAY)
    assert err.value.code == "already_resolved"


@pytest.mark.parametrize("resolved_on", ["2019-12-31", "2026-11-23"])
def test_resolution_date_lies_between_onset_and_today(resolved_on):
    with pytest.raises(InvalidInput) as err:
        given(ADDED).resolve(resolved_on=resolved_on, today=TODAY)
    assert err.value.field == "resolved_on"


def test_status_changes_follow_fhir():
    diagnosis = given(ADDED)
    diagnosis.change_status("remission", reason="HbA1c normal")
    with pytest.raises(RuleViolated) as err:
        diagnosis.change_status("remission")
    assert err.value.code == "status_unchanged"
    with pytest.raises(RuleViolated) as err:
        diagnosis.change_status("active")
    assert err.value.code == "use_recurrence_or_relapse"
    diagnosis.change_status("relapse")
    assert [e.clinical_status.value for e in diagnosis.pending] == ["remission", "relapse"]
    with pytest.raises(InvalidInput) as err:
        diagnosis.change_status("resolved")
    assert err.value.field == "clinical_status"


def test_a_resolved_problem_can_recur():
    diagnosis = given(ADDED, DiagnosisResolved(patient_id=PATIENT, resolved_on=TODAY))
    diagnosis.change_status("recurrence")
    assert diagnosis.pending == [DiagnosisStatusChanged(patient_id=PATIENT, clinical_status="recurrence")]
    assert (diagnosis.s.resolved_on, diagnosis.s.clinical_status.is_active) == (None, True)


def test_snapshot_round_trip():
    diagnosis = given(ADDED, DiagnosisResolved(patient_id=PATIENT, resolved_on=TODAY))
    copy = Diagnosis.from_snapshot(diagnosis.id, 2, diagnosis.snapshot_state())
    assert copy.state() == diagnosis.state() and copy.s.resolved_on == TODAY
