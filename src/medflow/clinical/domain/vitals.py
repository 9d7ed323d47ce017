"""Vital signs: the event, its physiological bounds, and the Chart aggregate. No Django here.

Which aggregate owns a VitalSignsRecorded event:
- measured during an encounter, the Encounter: "no vitals on an ended encounter" is then an
  invariant checked and appended in one transaction, never a race between two streams;
- measured outside any encounter (a home reading, a ward round), the patient's Chart: one stream
  per patient, whose id is derived from the patient id (`chart_id`) because the Patient stream
  already uses the patient id itself. Nothing about a single measurement is ever changed later,
  so the Chart needs no more than "append a measurement".
Either way the event carries `patient_id`, so the read models and the timeline need not care.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime

from medflow.clinical.domain.common import ClinicalAggregate, State, not_in_future, without_none
from medflow.errors import InvalidInput
from medflow.eventstore.events import DomainEvent, validate_event


@dataclass(frozen=True)
class Measure:
    """A vital sign's plausible range: values outside it are typing or unit mistakes."""

    low: float
    high: float
    unit: str
    label: str


# Wide enough for every patient who was ever measured alive, narrow enough to catch units mixed
# up (98.6 as a Celsius temperature, a weight in pounds, a height in metres). Temperature goes
# below the usual 25 °C because accidental hypothermia survivors were measured near 14 °C; weight
# below 0.3 kg because newborns of 245 g have survived.
MEASURES: dict[str, Measure] = {
    "systolic": Measure(40, 300, "mmHg", "BP"),
    "diastolic": Measure(20, 200, "mmHg", "BP"),
    "heart_rate": Measure(20, 300, "bpm", "HR"),
    "respiratory_rate": Measure(4, 80, "breaths/min", "RR"),
    "temperature_c": Measure(10, 46, "°C", "T"),
    "spo2": Measure(50, 100, "%", "SpO2"),
    "weight_kg": Measure(0.2, 650, "kg", "weight"),
    "height_cm": Measure(20, 280, "cm", "height"),
}


class VitalSignsRecorded(DomainEvent):
    """A set of vital signs measured at one time; each value in the unit its name gives."""

    effective_time_field = "measured_at"
    timeline_kind: ClassVar[str] = "vitals"

    patient_id: UUID
    encounter_id: UUID | None = None
    measured_at: AwareDatetime
    systolic: int | None = None
    diastolic: int | None = None
    heart_rate: int | None = None
    respiratory_rate: int | None = None
    temperature_c: float | None = None
    spo2: int | None = None
    weight_kg: float | None = None
    height_cm: float | None = None

    def values(self) -> dict[str, float]:
        """Return the measured values by name."""
        return {name: value for name in MEASURES if (value := getattr(self, name)) is not None}

    def summary(self) -> str:
        values = self.values()
        parts = []
        if "systolic" in values:
            parts.append(f"BP {values.pop('systolic')}/{values.pop('diastolic')} mmHg")
        for name, value in values.items():
            measure = MEASURES[name]
            parts.append(f"{measure.label} {value:g} {measure.unit}")
        return ", ".join(parts)


def vital_signs_event(
    *, patient_id: UUID, encounter_id: UUID | None, measured_at: datetime | str, now: datetime,
    values: dict[str, Any],
) -> VitalSignsRecorded:
    """Validate a set of measurements and return the event recording them."""
    unknown = sorted(set(values) - set(MEASURES))
    if unknown:
        raise InvalidInput(f"{unknown[0]} is not a vital sign", field=unknown[0])
    event = validate_event(VitalSignsRecorded, without_none({
        "patient_id": patient_id, "encounter_id": encounter_id, "measured_at": measured_at,
        **values,
    }))
    measured = event.values()
    if not measured:
        raise InvalidInput(
            f"record at least one vital sign ({', '.join(MEASURES)})", field="vital_signs"
        )
    for name, value in measured.items():
        measure = MEASURES[name]
        if not measure.low <= value <= measure.high:
            raise InvalidInput(
                f"{name} must be between {measure.low:g} and {measure.high:g} {measure.unit}",
                field=name,
            )
    if ("systolic" in measured) != ("diastolic" in measured):
        missing = "diastolic" if "systolic" in measured else "systolic"
        raise InvalidInput("systolic and diastolic are recorded together", field=missing)
    if "systolic" in measured and measured["diastolic"] >= measured["systolic"]:
        raise InvalidInput("diastolic must be lower than systolic (mmHg)", field="diastolic")
    not_in_future(event.measured_at, now, "measured_at")
    return event


def latest_values(
    latest: dict[str, dict[str, Any]], event: VitalSignsRecorded, event_id: UUID
) -> dict[str, dict[str, Any]]:
    """Fold one measurement into the latest value of each vital sign and return the result.

    A measurement entered late (measured before the one on file) does not replace it; of two
    taken at the same time, the one recorded last wins.
    """
    result = dict(latest)
    for name, value in event.values().items():
        current = result.get(name)
        if current is None or current["measured_at"] <= event.measured_at:
            result[name] = {
                "value": value, "unit": MEASURES[name].unit, "measured_at": event.measured_at,
                "event_id": event_id, "encounter_id": event.encounter_id,
            }
    return result


# Chart stream ids live in their own namespace so that they never collide with a patient id.
CHART_NAMESPACE = UUID("6b1e5b0e-6c2f-4c43-9d6a-0c7a1f9e2d10")


def chart_id(patient_id: UUID) -> UUID:
    """Return the id of a patient's Chart stream."""
    return uuid.uuid5(CHART_NAMESPACE, str(patient_id))


class ChartState(State):
    patient_id: UUID | None = None
    vital_signs_count: int = 0


class Chart(ClinicalAggregate):
    """A patient's measurements taken outside any encounter (see the module docstring)."""

    aggregate_type = "Chart"
    state_class = ChartState

    def record_vital_signs(
        self, *, patient_id: UUID, measured_at: datetime | str, now: datetime, values: dict[str, Any]
    ) -> None:
        """Record a set of vital signs measured outside an encounter."""
        if self.id != chart_id(patient_id):
            raise InvalidInput(f"chart {self.id} is not patient {patient_id}'s", field="patient_id")
        self.record(vital_signs_event(
            patient_id=patient_id, encounter_id=None, measured_at=measured_at, now=now,
            values=values,
        ))

    def when(self, event: DomainEvent) -> None:
        match event:
            case VitalSignsRecorded():
                self.s.patient_id = event.patient_id
                self.s.vital_signs_count += 1
