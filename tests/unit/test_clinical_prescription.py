"""Given/when/then tests of the Prescription aggregate: no database."""

import uuid

import pytest

from medflow.clinical.domain import (
    MedicationDiscontinued,
    MedicationPrescribed,
    Prescription,
    PrescriptionApproved,
)
from medflow.errors import InvalidInput, RuleViolated

PATIENT = uuid.uuid4()
ORDER = {"drug_code": "860975", "drug_name": "Metformin 500 MG Oral Tablet", "dose": "500 mg",
         "route": "oral", "frequency": "twice daily", "reason": "type 2 diabetes"}
PRESCRIBED = MedicationPrescribed(patient_id=PATIENT, prescriber_id=7, **ORDER)
PENDING = MedicationPrescribed(patient_id=PATIENT, prescriber_id=7, needs_approval=True, **ORDER)
APPROVED = PrescriptionApproved(patient_id=PATIENT, approved_by=8)
STOPPED = MedicationDiscontinued(patient_id=PATIENT, reason="GI upset", discontinued_by=7)


def given(*events) -> Prescription:
    return Prescription.replay(uuid.uuid4(), events)


def test_prescribe_is_active_at_once_unless_it_needs_approval():
    prescription = given()
    prescription.prescribe(patient_id=PATIENT, prescriber_id=7, **ORDER)
    assert prescription.pending == [PRESCRIBED]
    assert prescription.state()["status"] == "active"
    assert given(PENDING).state()["status"] == "pending"
    assert PENDING.summary() == (
        "Prescribed Metformin 500 MG Oral Tablet 500 mg oral twice daily (awaiting approval)")


@pytest.mark.parametrize(("changes", "field"), [
    ({"drug_code": "RX-1"}, "drug_code"),
    ({"drug_name": ""}, "drug_name"),
    ({"route": "by mouth"}, "route"),
    ({"dose": None}, "dose"),
    ({"needs_approval": "perhaps"}, "needs_approval"),
])
def test_prescribe_refuses_bad_input(changes, field):
    order = {k: v for k, v in {**ORDER, **changes}.items() if v is not None}
    with pytest.raises(InvalidInput) as err:
        given().prescribe(patient_id=PATIENT, prescriber_id=7, **order)
    assert err.value.field == field


def test_a_second_doctor_approves_a_pending_prescription_once():
    prescription = given(PENDING)
    with pytest.raises(RuleViolated) as err:
        prescription.approve(approved_by=7)
    assert err.value.code == "self_approval"
    prescription.approve(approved_by=8)
    assert prescription.pending == [APPROVED]
    assert prescription.state()["status"] == "active"
    with pytest.raises(RuleViolated) as err:
        prescription.approve(approved_by=9)
    assert err.value.code == "already_approved"


def test_approval_of_what_needs_none_or_was_discontinued_is_refused():
    with pytest.raises(RuleViolated) as err:
        given(PRESCRIBED).approve(approved_by=8)
    assert err.value.code == "approval_not_needed"
    with pytest.raises(RuleViolated) as err:
        given(PENDING, STOPPED).approve(approved_by=8)
    assert err.value.code == "discontinued"


def test_discontinue_needs_a_reason_and_happens_once():
    for reason in (None, "  "):
        with pytest.raises(InvalidInput) as err:
            given(PRESCRIBED).discontinue(reason=reason, discontinued_by=7)
        assert err.value.field == "reason"
    prescription = given(PRESCRIBED)
    prescription.discontinue(reason="GI upset", discontinued_by=7)
    assert prescription.pending == [STOPPED]
    assert prescription.state()["status"] == "discontinued"
    with pytest.raises(RuleViolated) as err:
        prescription.discontinue(reason="again", discontinued_by=7)
    assert err.value.code == "already_discontinued"


def test_a_pending_prescription_can_be_withdrawn():
    prescription = given(PENDING)
    prescription.discontinue(reason="prescribed in error", discontinued_by=7)
    assert prescription.state()["status"] == "discontinued"


def test_snapshot_round_trip():
    prescription = given(PENDING, APPROVED, STOPPED)
    copy = Prescription.from_snapshot(prescription.id, 3, prescription.snapshot_state())
    assert copy.state() == prescription.state()
    assert (copy.s.approved_by, copy.s.discontinued_reason) == (8, "GI upset")
