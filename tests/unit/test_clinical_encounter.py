"""Given/when/then tests of the Encounter aggregate: no database."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from medflow.clinical.domain import Encounter, EncounterEnded, EncounterStarted, VitalSignsRecorded
from medflow.errors import InvalidInput, RuleViolated

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
PATIENT, CLINIC, APPOINTMENT = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
STARTED = EncounterStarted(
    patient_id=PATIENT, clinic_id=CLINIC, provider_id=7, kind="ambulatory",
    appointment_id=APPOINTMENT, reason="cough", started_at=NOW - timedelta(hours=1),
)
ENDED = EncounterEnded(patient_id=PATIENT, ended_at=NOW, disposition="home")


def given(*events) -> Encounter:
    return Encounter.replay(uuid.uuid4(), events)


def start(encounter: Encounter, **changes) -> None:
    fields = {"patient_id": PATIENT, "clinic_id": CLINIC, "provider_id": 7, "kind": "ambulatory",
              "appointment_id": APPOINTMENT, "reason": "cough",
              "started_at": NOW - timedelta(hours=1), "now": NOW, **changes}
    encounter.start(**fields)


def test_start_from_an_appointment():
    encounter = given()
    start(encounter)
    assert encounter.pending == [STARTED]
    assert encounter.state()["status"] == "in_progress"
    assert STARTED.summary() == "Ambulatory encounter started: cough"


def test_start_a_walk_in_without_appointment_or_provider():
    encounter = given()
    start(encounter, kind="walk_in", appointment_id=None, provider_id=None, reason=None)
    assert encounter.pending[0].payload() == {
        "patient_id": str(PATIENT), "clinic_id": str(CLINIC), "kind": "walk_in",
        "started_at": "2026-11-22T08:30:00Z",
    }


@pytest.mark.parametrize(("changes", "field"), [
    ({"kind": "walk_in"}, "appointment_id"),
    ({"kind": "teleportation"}, "kind"),
    ({"started_at": NOW + timedelta(hours=1)}, "started_at"),
    ({"started_at": "2026-11-22T08:00:00"}, "started_at"),
    ({"reason": "x" * 501}, "reason"),
])
def test_start_refuses_bad_input_naming_the_field(changes, field):
    with pytest.raises(InvalidInput) as err:
        start(given(), **changes)
    assert err.value.field == field


def test_start_twice_is_refused():
    with pytest.raises(RuleViolated) as err:
        start(given(STARTED))
    assert err.value.code == "already_started"


def test_end_records_disposition_and_summary():
    encounter = given(STARTED)
    encounter.end(ended_at=NOW, disposition="home", closing_summary="Viral URTI; fluids.", now=NOW)
    assert encounter.pending == [
        EncounterEnded(patient_id=PATIENT, ended_at=NOW, disposition="home",
                       closing_summary="Viral URTI; fluids.")
    ]
    assert encounter.ended and encounter.state()["disposition"] == "home"
    assert encounter.pending[0].summary() == "Encounter ended (home)"


def test_cannot_end_twice():
    with pytest.raises(RuleViolated) as err:
        given(STARTED, ENDED).end(ended_at=NOW, disposition=None, closing_summary=None, now=NOW)
    assert err.value.code == "encounter_ended"


def test_end_cannot_precede_start_or_be_in_the_future():
    with pytest.raises(InvalidInput) as err:
        given(STARTED).end(ended_at=NOW - timedelta(hours=2), disposition=None,
                           closing_summary=None, now=NOW)
    assert err.value.field == "ended_at"
    with pytest.raises(InvalidInput) as err:
        given(STARTED).end(ended_at=NOW + timedelta(hours=2), disposition=None,
                           closing_summary=None, now=NOW)
    assert err.value.field == "ended_at"
    with pytest.raises(InvalidInput) as err:
        given(STARTED).end(ended_at=NOW, disposition="vanished", closing_summary=None, now=NOW)
    assert err.value.field == "disposition"


def test_vitals_recorded_on_an_open_encounter_carry_its_id():
    encounter = given(STARTED)
    encounter.record_vital_signs(patient_id=PATIENT, measured_at=NOW, now=NOW,
                                 values={"heart_rate": 88})
    assert encounter.pending == [
        VitalSignsRecorded(patient_id=PATIENT, encounter_id=encounter.id, measured_at=NOW,
                           heart_rate=88)
    ]
    assert encounter.s.vital_signs_count == 1


def test_no_vitals_on_an_ended_encounter_or_for_another_patient():
    with pytest.raises(RuleViolated) as err:
        given(STARTED, ENDED).record_vital_signs(patient_id=PATIENT, measured_at=NOW, now=NOW,
                                                 values={"heart_rate": 88})
    assert err.value.code == "encounter_ended"
    with pytest.raises(InvalidInput) as err:
        given(STARTED).record_vital_signs(patient_id=uuid.uuid4(), measured_at=NOW, now=NOW,
                                          values={"heart_rate": 88})
    assert err.value.field == "encounter_id"


def test_snapshot_round_trip():
    encounter = given(STARTED, VitalSignsRecorded(patient_id=PATIENT, measured_at=NOW, spo2=99),
                      ENDED)
    copy = Encounter.from_snapshot(encounter.id, encounter.version, encounter.snapshot_state())
    assert copy.state() == encounter.state() and copy.version == 3 and copy.ended
    assert copy.s.started_at == STARTED.started_at
