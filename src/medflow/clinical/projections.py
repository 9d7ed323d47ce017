"""Inline projection: keep the clinical read models in the append's transaction.

Every clinical event becomes a `clinical_read_model` row; the event's aggregate state is folded
into its current-state table; vital signs update the latest value of each measure.
"""

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from medflow.clinical.domain import (
    EVENTS,
    Allergy,
    ClinicalNote,
    Diagnosis,
    Encounter,
    Prescription,
    VitalSignsRecorded,
)
from medflow.clinical.domain.common import ClinicalAggregate
from medflow.clinical.domain.vitals import latest_values
from medflow.clinical.models import (
    AllergyRecord,
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
from medflow.projections.bulk import Rows, insert_rows, load_rows, update_rows
from medflow.timeline.projections import occurred_at

READ_MODELS = [
    ClinicalEventRecord, EncounterRecord, DiagnosisRecord, MedicationRecord, NoteRecord,
    LatestVitalSign, AllergyRecord,
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
    "Allergy": (Allergy, AllergyRecord, lambda s: {
        "status": s.status.value, "code_system": s.code_system.value, "code": s.code,
        "category": s.category.value, "criticality": s.criticality.value if s.criticality else "",
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
    encounter_id = recorded.event.value_of("encounter_id")
    if encounter_id is None and recorded.version > 1:
        encounter_id = (
            ClinicalEventRecord.objects.filter(aggregate_id=recorded.aggregate_id, version=1)
            .values_list("encounter_id", flat=True).first()
        )
    return encounter_id


def event_row(recorded: RecordedEvent, encounter_id: UUID | None) -> dict[str, Any]:
    """Return the event's `clinical_read_model` row."""
    return {
        "id": recorded.id, "position": recorded.position, "patient_id": recorded.event.patient_id,
        "encounter_id": encounter_id, "aggregate_id": recorded.aggregate_id,
        "aggregate_type": recorded.aggregate_type, "event_type": recorded.event_type,
        "schema_version": recorded.event.schema_version, "data": recorded.data,
        "recorded_at": recorded.timestamp, "effective_at": occurred_at(recorded),
        "version": recorded.version,
    }


def add_event_row(recorded: RecordedEvent) -> None:
    """Add the event to `clinical_read_model`."""
    ClinicalEventRecord.objects.create(**event_row(recorded, encounter_of(recorded)))


def folded_state(
    cls: type[ClinicalAggregate], columns: Columns, row: dict[str, Any] | None,
    recorded: RecordedEvent,
) -> dict[str, Any] | None:
    """Return the current-state row after `recorded` (all columns but `id` and `created_at`), or
    None when the row has taken it in already."""
    if row is not None and row["version"] >= recorded.version:
        return None  # already folded in: a replay must not apply an event twice
    aggregate = (
        cls(recorded.aggregate_id) if row is None
        else cls.from_snapshot(recorded.aggregate_id, row["version"], row["state"])
    )
    aggregate.when(recorded.event)
    return {
        "patient_id": aggregate.patient_id, "state": aggregate.state(), "version": recorded.version,
        "updated_at": recorded.timestamp, **columns(aggregate.s),
    }


def update_current_state(recorded: RecordedEvent) -> None:
    """Fold the event into its aggregate's current-state row."""
    entry = STATE_TABLES.get(recorded.aggregate_type)
    if entry is None:
        return
    cls, model, columns = entry
    row = model.objects.filter(id=recorded.aggregate_id).values("version", "state").first()
    values = folded_state(cls, columns, row, recorded)
    if values is None:
        return
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
    for name, fields in _replaced_vitals(before, recorded).items():
        if name in rows:
            LatestVitalSign.objects.filter(pk=rows[name].pk).update(**fields)
        else:
            LatestVitalSign.objects.create(patient_id=event.patient_id, measure=name, **fields)


VITAL_COLUMNS = ("value", "unit", "measured_at", "event_id", "encounter_id")


def _replaced_vitals(before: dict[str, dict], recorded: RecordedEvent) -> dict[str, dict]:
    """Return, by measure, the latest-vital columns that the event replaces."""
    after = latest_values(before, recorded.event, recorded.id)  # type: ignore[arg-type]
    return {
        name: {key: latest[key] for key in VITAL_COLUMNS}
        for name, latest in after.items() if latest["event_id"] == recorded.id
    }


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


@inline.batched(PatientForgotten)
def apply_batch(events: Sequence[RecordedEvent]) -> None:
    """Fold a page of clinical events into the clinical tables, as `project` would one by one."""
    encounters = _first_encounters(events)
    states = {model: Rows(model) for _, model, _ in STATE_TABLES.values()}
    for model, rows in states.items():
        rows.load(r.aggregate_id for r in events
                  if STATE_TABLES.get(r.aggregate_type, (None, None))[1] is model)
    vitals = _Vitals(r for r in events if isinstance(r.event, VitalSignsRecorded))
    new_events = []
    for recorded in events:
        encounter_id = _encounter_in_batch(recorded, encounters)
        if recorded.version == 1:
            encounters[recorded.aggregate_id] = encounter_id
        new_events.append(event_row(recorded, encounter_id))
        entry = STATE_TABLES.get(recorded.aggregate_type)
        if entry is not None:
            cls, model, columns = entry
            rows = states[model]
            row = rows.get(recorded.aggregate_id)
            values = folded_state(cls, columns, row, recorded)
            if values is not None:
                created = {"created_at": recorded.timestamp} if row is None else {
                    "created_at": row["created_at"]}
                rows.put({"id": recorded.aggregate_id, **created, **values})
        if isinstance(recorded.event, VitalSignsRecorded):
            vitals.fold(recorded)
    insert_rows(ClinicalEventRecord, new_events)
    for rows in states.values():
        rows.write()
    vitals.write()


def _first_encounters(events: Sequence[RecordedEvent]) -> dict[UUID, UUID | None]:
    """Return the encounter of the first event of each aggregate that the page's events would
    look up (those without an encounter of their own, past version 1, first seen earlier)."""
    in_page = {r.aggregate_id for r in events if r.version == 1}
    wanted = {
        r.aggregate_id for r in events
        if r.aggregate_type != "Encounter" and r.version > 1 and r.aggregate_id not in in_page
        and getattr(r.event, "encounter_id", None) is None
    }
    found: dict[UUID, UUID | None] = {key: None for key in wanted}
    for row in load_rows(ClinicalEventRecord, "aggregate_id", wanted, version=1):
        found[row["aggregate_id"]] = row["encounter_id"]
    return found


def _encounter_in_batch(recorded: RecordedEvent, first: dict[UUID, UUID | None]) -> UUID | None:
    # encounter_of, with the first events' encounters looked up once for the page.
    if recorded.aggregate_type == "Encounter":
        return recorded.aggregate_id
    encounter_id = recorded.event.value_of("encounter_id")
    if encounter_id is None and recorded.version > 1:
        encounter_id = first.get(recorded.aggregate_id)
    return encounter_id


class _Vitals:
    """The latest vital signs of the page's patients, folded in memory and written once."""

    def __init__(self, events) -> None:
        self.rows: dict[UUID, dict[str, dict]] = {}  # patient -> measure -> row
        for row in load_rows(LatestVitalSign, "patient_id", {r.event.patient_id for r in events}):
            self.rows.setdefault(row["patient_id"], {})[row["measure"]] = row
        self.dirty: dict[tuple, None] = {}

    def fold(self, recorded: RecordedEvent) -> None:
        patient_id = recorded.event.patient_id
        rows = self.rows.setdefault(patient_id, {})
        measured = recorded.event.values()
        before = {
            name: {"measured_at": row["measured_at"], "event_id": row["event_id"]}
            for name, row in rows.items() if name in measured
        }
        for name, fields in _replaced_vitals(before, recorded).items():
            rows.setdefault(name, {"patient_id": patient_id, "measure": name}).update(fields)
            self.dirty[(patient_id, name)] = None

    def write(self) -> None:
        changed = [self.rows[patient][name] for patient, name in self.dirty]
        insert_rows(LatestVitalSign, [row for row in changed if "id" not in row])
        update_rows(LatestVitalSign, [row for row in changed if "id" in row])
