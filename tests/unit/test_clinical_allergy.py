"""Given/when/then tests of the Allergy aggregate: no database."""

import uuid
from datetime import date

import pytest

from medflow.clinical.domain import (
    Allergy,
    AllergyRecorded,
    AllergyRefuted,
    AllergyResolved,
    AllergyStatus,
)
from medflow.errors import InvalidInput, RuleViolated

TODAY = date(2026, 11, 22)
PATIENT = uuid.uuid4()
PENICILLIN = {"code_system": "RxNorm", "code": "7980", "display": "Penicillin G",
              "category": "medication", "criticality": "high", "onset_date": "2019-05-01",
              "reactions": [{"manifestation": "Anaphylaxis", "code": "39579001",
                             "severity": "severe"}],
              "note": "Collapsed in the dentist's chair after amoxicillin"}
RECORDED = AllergyRecorded(
    patient_id=PATIENT, code_system="RxNorm", code="7980", display="Penicillin G",
    category="medication", criticality="high", onset_date=date(2019, 5, 1),
    reactions=[{"manifestation": "Anaphylaxis", "code": "39579001", "severity": "severe"}],
    note="Collapsed in the dentist's chair after amoxicillin", recorded_by=7,
)


def given(*events) -> Allergy:
    return Allergy.replay(uuid.uuid4(), events)


def add(**changes) -> AllergyRecorded:
    allergy = given()
    allergy.add(patient_id=PATIENT, today=TODAY, recorded_by=7, **{**PENICILLIN, **changes})
    return allergy.pending[-1]


def test_add_records_allergy_recorded_active():
    assert add() == RECORDED
    assert RECORDED.summary() == "Allergy: Penicillin G (medication, high criticality)"
    allergy = given(RECORDED)
    assert allergy.s.status is AllergyStatus.ACTIVE
    assert allergy.state()["reactions"] == [
        {"manifestation": "Anaphylaxis", "code": "39579001", "severity": "severe"}]


def test_an_intolerance_without_criticality_or_reactions():
    event = add(type="intolerance", code_system="SNOMED CT", code="782415009",
                display="Lactose", category="food", criticality=None, reactions=[], note=None,
                onset_date=None)
    assert event.summary() == "Intolerance: Lactose (food)"
    assert given(event).state()["criticality"] is None


@pytest.mark.parametrize(("system", "code", "stored_system"), [
    ("SNOMED-CT", "111088007", "SNOMED CT"),  # Synthea's spelling
    ("http://snomed.info/sct", "762952008", "SNOMED CT"),
    ("rxnorm", "7980", "RxNorm"),
    ("http://www.nlm.nih.gov/research/umls/rxnorm", " 1191 ", "RxNorm"),
])
def test_code_systems_and_codes_that_are_accepted(system, code, stored_system):
    event = add(code_system=system, code=code)
    assert (event.code_system.value, event.code) == (stored_system, code.strip())


def test_enumerations_are_read_in_any_case():
    event = add(category="FOOD", criticality="HIGH",
                reactions=[{"manifestation": "Hives", "severity": "MODERATE"}])
    assert (event.category.value, event.criticality.value, event.reactions[0].severity.value) == (
        "food", "high", "moderate")


@pytest.mark.parametrize(("changes", "field"), [
    ({"code_system": "ICD-10"}, "code_system"),
    ({"code_system": "SNOMED CT", "code": "12345"}, "code"),
    ({"code": "penicillin"}, "code"),
    ({"code": "0123"}, "code"),
    ({"display": " "}, "display"),
    ({"category": "drug"}, "category"),
    ({"type": "sensitivity"}, "type"),
    ({"criticality": "severe"}, "criticality"),
    ({"reactions": [{"manifestation": ""}]}, "reactions.0.manifestation"),
    ({"reactions": [{"manifestation": "Hives", "severity": "deadly"}]}, "reactions.0.severity"),
    ({"reactions": [{"manifestation": "Hives"}, {"manifestation": "Rash", "code": "rash"}]},
     "reactions.1.code"),
    ({"reactions": [{"manifestation": "Hives"}] * 11}, "reactions"),
    ({"onset_date": "2027-01-01"}, "onset_date"),
    ({"note": "x" * 501}, "note"),
])
def test_add_refuses_bad_input(changes, field):
    with pytest.raises(InvalidInput) as err:
        add(**changes)
    assert err.value.field == field


def test_category_is_required():
    allergy = given()
    fields = {k: v for k, v in PENICILLIN.items() if k != "category"}
    with pytest.raises(InvalidInput) as err:
        allergy.add(patient_id=PATIENT, today=TODAY, recorded_by=7, **fields)
    assert err.value.field == "category"


def test_recorded_once():
    with pytest.raises(RuleViolated) as err:
        given(RECORDED).add(patient_id=PATIENT, today=TODAY, recorded_by=7, **PENICILLIN)
    assert err.value.code == "already_recorded"


def test_resolve_with_reason_then_not_again():
    allergy = given(RECORDED)
    allergy.resolve(resolved_on="2026-01-10", today=TODAY, reason="Tolerated an oral challenge")
    resolved = allergy.pending[-1]
    assert resolved == AllergyResolved(patient_id=PATIENT, resolved_on=date(2026, 1, 10),
                                       reason="Tolerated an oral challenge")
    assert (allergy.s.status, allergy.s.resolved_on, allergy.s.status_reason) == (
        AllergyStatus.RESOLVED, date(2026, 1, 10), "Tolerated an oral challenge")
    with pytest.raises(RuleViolated) as err:
        allergy.resolve(resolved_on=TODAY, today=TODAY, reason="again")
    assert err.value.code == "already_resolved"


@pytest.mark.parametrize(("resolved_on", "reason", "field"), [
    ("2026-01-10", None, "reason"),
    ("2026-01-10", "  ", "reason"),
    ("2018-01-01", "outgrown", "resolved_on"),  # before the onset
    ("2027-01-01", "outgrown", "resolved_on"),
])
def test_resolve_refuses_bad_input(resolved_on, reason, field):
    allergy = given(RECORDED)
    with pytest.raises(InvalidInput) as err:
        allergy.resolve(resolved_on=resolved_on, today=TODAY, reason=reason)
    assert err.value.field == field
    assert allergy.pending == []


def test_refute_or_mark_entered_in_error():
    allergy = given(RECORDED)
    allergy.refute(reason="Negative skin test")
    assert allergy.pending[-1] == AllergyRefuted(patient_id=PATIENT, verification_status="refuted",
                                                 reason="Negative skin test")
    assert allergy.s.status is AllergyStatus.REFUTED
    assert allergy.pending[-1].summary() == "Allergy refuted"
    other = given(RECORDED)
    other.refute(reason="Wrong patient", entered_in_error=True)
    assert other.s.status is AllergyStatus.ENTERED_IN_ERROR
    assert other.pending[-1].summary() == "Allergy entered in error"


def test_a_refuted_allergy_is_not_refuted_again_nor_resolved():
    refuted = AllergyRefuted(patient_id=PATIENT, reason="Negative skin test")
    allergy = given(RECORDED, refuted)
    with pytest.raises(RuleViolated) as err:
        allergy.refute(reason="again", entered_in_error=True)
    assert err.value.code == "already_refuted"
    with pytest.raises(RuleViolated) as err:
        allergy.resolve(resolved_on=TODAY, today=TODAY, reason="outgrown")
    assert err.value.code == "allergy_refuted"


def test_a_resolved_allergy_may_be_found_never_to_have_held():
    resolved = AllergyResolved(patient_id=PATIENT, resolved_on=date(2026, 1, 10), reason="outgrown")
    allergy = given(RECORDED, resolved)
    allergy.refute(reason="Recorded on the wrong chart", entered_in_error=True)
    assert allergy.s.status is AllergyStatus.ENTERED_IN_ERROR


def test_refute_needs_a_reason():
    with pytest.raises(InvalidInput) as err:
        given(RECORDED).refute(reason=None)
    assert err.value.field == "reason"


def test_free_text_is_sealed_and_the_patient_is_the_subject():
    assert AllergyRecorded.personal_fields == {"note"}
    assert AllergyResolved.personal_fields == AllergyRefuted.personal_fields == {"reason"}
    assert RECORDED.data_subject(uuid.uuid4()) == PATIENT


def test_state_survives_a_snapshot():
    allergy = given(RECORDED, AllergyResolved(patient_id=PATIENT, resolved_on=date(2026, 1, 10),
                                              reason="outgrown"))
    again = Allergy.from_snapshot(allergy.id, allergy.version, allergy.snapshot_state())
    assert again.state() == allergy.state() and again.version == 2
