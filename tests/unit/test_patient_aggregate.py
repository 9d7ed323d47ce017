"""Given/when/then tests of the Patient aggregate: no database."""

import uuid
from datetime import date

import pytest

from medflow.errors import InvalidInput, RuleViolated
from medflow.patients.domain import Patient, PatientArchived, PatientRegistered, PatientUpdated

TODAY = date(2026, 11, 22)
CLINIC = uuid.uuid4()
REGISTERED = PatientRegistered(
    clinic_id=CLINIC, mrn="MRN-1", given_names="Ada", family_name="Lovelace",
    birth_date=date(1980, 12, 10),
)


def given(*events) -> Patient:
    return Patient.replay(uuid.uuid4(), events)


def test_register_records_patient_registered():
    patient = given()
    patient.register(clinic_id=CLINIC, today=TODAY, mrn=" MRN-1 ", given_names="Ada",
                     family_name="Lovelace", birth_date="1980-12-10")
    assert patient.pending == [REGISTERED]


@pytest.mark.parametrize("missing", ["given_names", "family_name", "birth_date", "mrn"])
def test_register_requires_name_birth_date_and_mrn(missing):
    fields = {"mrn": "M1", "given_names": "Ada", "family_name": "L", "birth_date": "1980-01-01"}
    del fields[missing]
    with pytest.raises(InvalidInput) as err:
        given().register(clinic_id=CLINIC, today=TODAY, **fields)
    assert err.value.field == missing


def test_register_refuses_blank_name():
    with pytest.raises(InvalidInput) as err:
        given().register(clinic_id=CLINIC, today=TODAY, mrn="M1", given_names="  ",
                         family_name="L", birth_date="1980-01-01")
    assert err.value.field == "given_names"


def test_register_refuses_birth_date_in_future():
    with pytest.raises(InvalidInput) as err:
        given().register(clinic_id=CLINIC, today=TODAY, mrn="M1", given_names="A",
                         family_name="L", birth_date="2026-11-23")
    assert err.value.field == "birth_date"


def test_register_twice_is_refused():
    with pytest.raises(RuleViolated):
        given(REGISTERED).register(clinic_id=CLINIC, today=TODAY, mrn="M2", given_names="A",
                                   family_name="L", birth_date="1980-01-01")


def test_update_records_only_changed_fields():
    patient = given(REGISTERED)
    patient.update({"given_names": "Ada", "family_name": "King", "phone": "+44 20 7946 0000"},
                   today=TODAY)
    assert [e.payload() for e in patient.pending] == [
        {"family_name": "King", "phone": "+44 20 7946 0000"}
    ]


def test_update_with_no_difference_records_nothing():
    patient = given(REGISTERED)
    patient.update({"given_names": "Ada"}, today=TODAY)
    assert patient.pending == []


def test_update_can_clear_contact_but_not_name():
    patient = given(REGISTERED, PatientUpdated(email="ada@example.org"))
    patient.update({"email": None}, today=TODAY)
    assert patient.pending[0].payload() == {"email": None}
    with pytest.raises(InvalidInput) as err:
        patient.update({"family_name": None}, today=TODAY)
    assert err.value.field == "family_name"


def test_update_refuses_unknown_field_and_future_birth_date():
    with pytest.raises(InvalidInput) as err:
        given(REGISTERED).update({"clinic_id": str(uuid.uuid4())}, today=TODAY)
    assert err.value.field == "clinic_id"
    with pytest.raises(InvalidInput) as err:
        given(REGISTERED).update({"birth_date": "2030-01-01"}, today=TODAY)
    assert err.value.field == "birth_date"


def test_bad_email_and_phone_name_the_field():
    for field, value in (("email", "not-an-email"), ("phone", "call me")):
        with pytest.raises(InvalidInput) as err:
            given(REGISTERED).update({field: value}, today=TODAY)
        assert err.value.field == field


def test_archived_patient_takes_no_changes():
    patient = given(REGISTERED, PatientArchived(reason="moved away"))
    with pytest.raises(RuleViolated) as err:
        patient.update({"phone": "555 0100"}, today=TODAY)
    assert err.value.code == "patient_archived"
    with pytest.raises(RuleViolated):
        patient.archive()


def test_state_folds_events_and_survives_a_snapshot_round_trip():
    patient = given(REGISTERED, PatientUpdated(
        phone="555 0100", address={"city": "London", "lines": ["1 Main St"]}))
    state = patient.state()
    assert state["phone"] == "555 0100"
    assert state["address"]["city"] == "London"
    copy = Patient.from_snapshot(patient.id, patient.version, patient.snapshot_state())
    assert copy.state() == state and copy.version == 2
