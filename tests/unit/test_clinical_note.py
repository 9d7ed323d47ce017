"""Given/when/then tests of the ClinicalNote aggregate (SOAP): no database."""

import uuid
from datetime import UTC, datetime

import pytest

from medflow.clinical.domain import ClinicalNote, NoteAmended, NoteDrafted, NoteRevised, NoteSigned
from medflow.errors import InvalidInput, RuleViolated

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
PATIENT = uuid.uuid4()
DRAFTED = NoteDrafted(patient_id=PATIENT, subjective="Cough for 3 days", objective="T 37.9",
                      author_id=5)
SIGNED = NoteSigned(patient_id=PATIENT, signed_by=7, signed_at=NOW)


def given(*events) -> ClinicalNote:
    return ClinicalNote.replay(uuid.uuid4(), events)


def test_draft_needs_at_least_one_section():
    note = given()
    note.draft(patient_id=PATIENT, author_id=5, subjective=" Cough for 3 days ", objective="T 37.9",
               assessment="", plan="")
    assert note.pending == [DRAFTED]
    assert note.state()["status"] == "draft"
    with pytest.raises(InvalidInput) as err:
        given().draft(patient_id=PATIENT, author_id=5, subjective=" ", plan="")
    assert err.value.field == "subjective"
    with pytest.raises(InvalidInput) as err:
        given().draft(patient_id=PATIENT, author_id=5, plan="x" * 20001)
    assert err.value.field == "plan"


def test_revise_records_only_changed_sections():
    note = given(DRAFTED)
    note.revise({"subjective": "Cough for 3 days", "assessment": "Viral URTI", "plan": ""},
                revised_by=5)
    assert note.pending == [NoteRevised(patient_id=PATIENT, assessment="Viral URTI", revised_by=5)]
    assert note.pending[0].summary() == "Note draft revised (assessment)"
    note.revise({"objective": "T 37.9"}, revised_by=5)
    assert len(note.pending) == 1
    assert note.state()["assessment"] == "Viral URTI" and note.s.revisions == 1


def test_revise_can_clear_a_section_but_not_all():
    note = given(DRAFTED)
    note.revise({"objective": ""}, revised_by=5)
    assert note.state()["objective"] == ""
    with pytest.raises(InvalidInput):
        note.revise({"subjective": ""}, revised_by=5)


@pytest.mark.parametrize(("changes", "field"), [
    ({"diagnosis": "flu"}, "diagnosis"),
    ({"plan": None}, "plan"),
    ({"plan": 42}, "plan"),
])
def test_revise_refuses_bad_input(changes, field):
    with pytest.raises(InvalidInput) as err:
        given(DRAFTED).revise(changes, revised_by=5)
    assert err.value.field == field


def test_a_signed_note_is_never_edited_and_signed_once():
    note = given(DRAFTED)
    note.sign(signed_by=7, signed_at=NOW)
    assert note.pending == [SIGNED] and note.state()["status"] == "signed"
    with pytest.raises(RuleViolated) as err:
        note.revise({"plan": "rest"}, revised_by=7)
    assert err.value.code == "note_signed"
    with pytest.raises(RuleViolated) as err:
        note.sign(signed_by=7, signed_at=NOW)
    assert err.value.code == "already_signed"


def test_amend_only_after_signing_and_with_a_reason():
    with pytest.raises(RuleViolated) as err:
        given(DRAFTED).amend(amendment="x", reason="y", amended_by=7, amended_at=NOW)
    assert err.value.code == "not_signed"
    for reason in (None, " "):
        with pytest.raises(InvalidInput) as err:
            given(DRAFTED, SIGNED).amend(amendment="x", reason=reason, amended_by=7, amended_at=NOW)
        assert err.value.field == "reason"
    with pytest.raises(InvalidInput) as err:
        given(DRAFTED, SIGNED).amend(amendment="", reason="typo", amended_by=7, amended_at=NOW)
    assert err.value.field == "amendment"


def test_amendments_accumulate_beside_the_signed_text():
    note = given(DRAFTED, SIGNED)
    note.amend(amendment="Temperature was 38.9", reason="transcription error", amended_by=7,
               amended_at=NOW)
    note.amend(amendment="Allergy: penicillin", reason="late information", amended_by=7,
               amended_at=NOW)
    assert note.pending[0] == NoteAmended(patient_id=PATIENT, amendment="Temperature was 38.9",
                                          reason="transcription error", amended_by=7,
                                          amended_at=NOW)
    state = note.state()
    assert state["status"] == "amended" and state["objective"] == "T 37.9"
    assert [a["reason"] for a in state["amendments"]] == ["transcription error", "late information"]
    with pytest.raises(RuleViolated):
        note.revise({"objective": "T 38.9"}, revised_by=7)


def test_snapshot_round_trip():
    note = given(DRAFTED, SIGNED, NoteAmended(patient_id=PATIENT, amendment="a", reason="r",
                                              amended_at=NOW))
    copy = ClinicalNote.from_snapshot(note.id, 3, note.snapshot_state())
    assert copy.state() == note.state() and copy.s.amendments[0].amendment == "a"
