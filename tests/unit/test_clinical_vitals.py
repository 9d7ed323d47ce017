"""Given/when/then tests of vital signs on the Chart and the Encounter: no database."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from medflow.clinical.domain import Chart, VitalSignsRecorded, chart_id
from medflow.clinical.domain.vitals import MEASURES, latest_values
from medflow.errors import InvalidInput

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
PATIENT = uuid.uuid4()


def chart() -> Chart:
    return Chart.replay(chart_id(PATIENT), [])


def record(**values) -> VitalSignsRecorded:
    aggregate = chart()
    measured_at = values.pop("measured_at", NOW)
    aggregate.record_vital_signs(patient_id=PATIENT, measured_at=measured_at, now=NOW, values=values)
    return aggregate.pending[-1]


def test_records_every_measure_with_its_value():
    event = record(systolic=120, diastolic=80, heart_rate=72, respiratory_rate=16,
                   temperature_c=37.2, spo2=98, weight_kg=70.5, height_cm=172)
    assert event == VitalSignsRecorded(
        patient_id=PATIENT, measured_at=NOW, systolic=120, diastolic=80, heart_rate=72,
        respiratory_rate=16, temperature_c=37.2, spo2=98, weight_kg=70.5, height_cm=172,
    )
    assert event.summary() == (
        "BP 120/80 mmHg, HR 72 bpm, RR 16 breaths/min, T 37.2 °C, SpO2 98 %, weight 70.5 kg,"
        " height 172 cm"
    )


def test_payload_carries_only_what_was_measured():
    assert record(heart_rate=60).payload() == {
        "patient_id": str(PATIENT), "measured_at": "2026-11-22T09:30:00Z", "heart_rate": 60,
    }


@pytest.mark.parametrize(("field", "low", "high", "unit"), [
    (name, m.low, m.high, m.unit) for name, m in MEASURES.items() if name not in ("systolic", "diastolic")
])
def test_values_outside_physiological_bounds_name_field_and_unit(field, low, high, unit):
    record(**{field: low})
    record(**{field: high})
    small = low - (0.1 if isinstance(low, float) else 1)
    for value in (small, high + 1):
        with pytest.raises(InvalidInput) as err:
            record(**{field: value})
        assert err.value.field == field
        assert err.value.message == f"{field} must be between {low:g} and {high:g} {unit}"


def test_heart_rate_message_is_exact():
    with pytest.raises(InvalidInput) as err:
        record(heart_rate=301)
    assert err.value.message == "heart_rate must be between 20 and 300 bpm"


@pytest.mark.parametrize(("values", "field"), [
    ({"systolic": 301, "diastolic": 80}, "systolic"),
    ({"systolic": 39, "diastolic": 30}, "systolic"),
    ({"systolic": 120, "diastolic": 19}, "diastolic"),
    ({"systolic": 120, "diastolic": 120}, "diastolic"),
    ({"systolic": 110, "diastolic": 130}, "diastolic"),
    ({"systolic": 120}, "diastolic"),
    ({"diastolic": 80}, "systolic"),
])
def test_blood_pressure_rules(values, field):
    with pytest.raises(InvalidInput) as err:
        record(**values)
    assert err.value.field == field
    assert "mmHg" in err.value.message or "together" in err.value.message


def test_at_least_one_value_is_needed():
    with pytest.raises(InvalidInput) as err:
        record()
    assert err.value.field == "vital_signs"


@pytest.mark.parametrize(("values", "field"), [
    ({"heart_rate": "fast"}, "heart_rate"),
    ({"heart_rate": 72.5}, "heart_rate"),
    ({"pulse": 72}, "pulse"),
    ({"heart_rate": 72, "measured_at": "2026-11-22T09:00:00"}, "measured_at"),
    ({"heart_rate": 72, "measured_at": NOW + timedelta(hours=1)}, "measured_at"),
])
def test_malformed_values_name_the_field(values, field):
    with pytest.raises(InvalidInput) as err:
        record(**values)
    assert err.value.field == field


def test_a_slightly_fast_client_clock_is_accepted():
    assert record(heart_rate=72, measured_at=NOW + timedelta(minutes=4)).heart_rate == 72


def test_chart_belongs_to_one_patient_and_counts_measurements():
    aggregate = chart()
    aggregate.record_vital_signs(patient_id=PATIENT, measured_at=NOW, now=NOW, values={"spo2": 97})
    assert aggregate.s.vital_signs_count == 1 and aggregate.patient_id == PATIENT
    with pytest.raises(InvalidInput) as err:
        aggregate.record_vital_signs(patient_id=uuid.uuid4(), measured_at=NOW, now=NOW,
                                     values={"spo2": 97})
    assert err.value.field == "patient_id"
    copy = Chart.from_snapshot(aggregate.id, 1, aggregate.snapshot_state())
    assert copy.state() == aggregate.state()


def test_chart_ids_are_stable_and_never_the_patient_id():
    assert chart_id(PATIENT) == chart_id(PATIENT) != PATIENT
    assert chart_id(uuid.uuid4()) != chart_id(PATIENT)


def test_latest_values_keep_the_latest_measurement_of_each_measure():
    first, second, late = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    latest = latest_values({}, record(heart_rate=70, spo2=97), first)
    latest = latest_values(latest, record(heart_rate=80, measured_at=NOW + timedelta(minutes=1)),
                           second)
    # Entered after the others but measured before them: replaces nothing it is older than.
    latest = latest_values(latest, record(heart_rate=50, spo2=90, weight_kg=60,
                                          measured_at=NOW - timedelta(hours=1)), late)
    assert {k: (v["value"], v["event_id"]) for k, v in latest.items()} == {
        "heart_rate": (80, second), "spo2": (97, first), "weight_kg": (60, late),
    }
    assert latest["weight_kg"]["unit"] == "kg"
