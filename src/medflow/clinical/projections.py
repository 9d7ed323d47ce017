"""Inline projection: keep the clinical read models in the append's transaction.

Every clinical event becomes a `clinical_read_model` row; the event's aggregate state is folded
into its current-state table; vital signs update the latest value of each measure.
"""

from collections.abc import Callable
from typing import Any
from uuid import UUID

from medflow.clinical.domain import (
    EVENTS,
    ClinicalNote,
    Diagnosis,
    Encounter,
    Prescription,
    VitalSignsRecorded,
)
from medflow.clinical.domain.common import ClinicalAggregate
from medflow.clinical.domain.vitals import latest_values
from medflow.clinical.models import (
    ClinicalEventRecord,
    CurrentState,
    DiagnosisRecord,
    EncounterRecord,
    LatestVitalSign,
    MedicationRecord,
    NoteRecord,
)
from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent
from medflow.patients.domain import PatientForgotten
from medflow.timeline.projections import occurred_at

READ_MODELS = [
    ClinicalEventRecord, EncounterRecord, DiagnosisRecord, MedicationRecord, NoteRecord,
    LatestVitalSign,
]

Columns = Callable[[Any], dict[str, Any]]

# Aggregate type -> (aggregate class, current-state table, the table's own columns from the state).
STATE_TABLES: dict[str, tuple[type[ClinicalAggregate], type[CurrentState], Columns]] = {
    "Encounter": (Encounter, EncounterRecord, lambda s: {
        "status": s.status.value, "clinic_id": s.clinic_id, "provider_id": s.provider_id,
        "appointment_id": s.appointment_id, "started_at": s.started_at, "ended_at": s.ended_at,
    }),
    "Diagnosis": (Diagnosis, DiagnosisRecord, lambda s: {
        "status": s.clinical_status.value, "code_system": s.code_system.value, "code": s.code,
    }),
    "Prescription": (Prescription, MedicationRecord, lambda s: {
        "status": s.status.value, "drug_code": s.drug_code, "drug_name": s.drug_name,
    }),
    "ClinicalNote": (ClinicalNote, NoteRecord, lambda s: {
        "status": s.status.value, "encounter_id": s.encounter_id, "author_id": s.author_id,
    }),
}


def encounter_of(recorded: RecordedEvent) -> UUID | None:
    """Return the encounter an event belongs to: its own field, or its aggregate's first event's."""
    if recorded.aggregate_type == "Encounter":
        return recorded.aggregate_id
    encounter_id = getattr(recorded.event, "encounter_id", None)
    if encounter_id is None and recorded.version > 1:
        encounter_id = (
            ClinicalEventRecord.objects.filter(aggregate_id=recorded.aggregate_id, version=1)
            .values_list("encounter_id", flat=True).first()
        )
    return encounter_id


def add_event_row(recorded: RecordedEvent) -> None:
    """Add the event to `clinical_read_model`."""
    ClinicalEventRecord.objects.create(
        id=recorded.id, position=recorded.position, patient_id=recorded.event.patient_id,
        encounter_id=encounter_of(recorded), aggregate_id=recorded.aggregate_id,
        aggregate_type=recorded.aggregate_type, event_type=recorded.event_type,
        schema_version=recorded.event.schema_version, data=recorded.data,
        recorded_at=recorded.timestamp, effective_at=occurred_at(recorded),
        version=recorded.version,
    )


def update_current_state(recorded: RecordedEvent) -> None:
    """Fold the event into its aggregate's current-state row."""
    entry = STATE_TABLES.get(recorded.aggregate_type)
    if entry is None:
        return
    cls, model, columns = entry
    row = model.objects.filter(id=recorded.aggregate_id).first()
    if row is not None and row.version >= recorded.version:
        return  # already folded in: a replay must not apply an event twice
    aggregate = (
        cls(recorded.aggregate_id) if row is None
        else cls.from_snapshot(recorded.aggregate_id, row.version, row.state)
    )
    aggregate.when(recorded.event)
    values = {
        "patient_id": aggregate.patient_id, "state": aggregate.state(), "version": recorded.version,
        "updated_at": recorded.timestamp, **columns(aggregate.s),
    }
    if row is None:
        model.objects.create(id=recorded.aggregate_id, created_at=recorded.timestamp, **values)
    else:
        model.objects.filter(id=recorded.aggregate_id).update(**values)


def update_latest_vitals(recorded: RecordedEvent) -> None:
    """Replace the latest value of each measure the event carries, unless it was measured earlier."""
    event: VitalSignsRecorded = recorded.event  # type: ignore[assignment]
    rows = {
        row.measure: row
        for row in LatestVitalSign.objects.filter(patient_id=event.patient_id, measure__in=event.values())
    }
    before = {
        name: {"measured_at": row.measured_at, "event_id": row.event_id} for name, row in rows.items()
    }
    after = latest_values(before, event, recorded.id)
    for name, latest in after.items():
        if latest["event_id"] != recorded.id:
            continue
        fields = {key: latest[key] for key in ("value", "unit", "measured_at", "event_id", "encounter_id")}
        if name in rows:
            LatestVitalSign.objects.filter(pk=rows[name].pk).update(**fields)
        else:
            LatestVitalSign.objects.create(patient_id=event.patient_id, measure=name, **fields)


@inline.on(*EVENTS)
def project(recorded: RecordedEvent) -> None:
    add_event_row(recorded)
    update_current_state(recorded)
    if isinstance(recorded.event, VitalSignsRecorded):
        update_latest_vitals(recorded)


@inline.on(PatientForgotten)
def forget_patient(recorded: RecordedEvent) -> None:
    # Clinical rows carry the patient's free text in clear: a forgotten patient's go.
    for model in reversed(READ_MODELS):
        model.objects.filter(patient_id=recorded.aggregate_id).delete()
