"""Read side of the clinical context: the current-state tables, or a replay as of a time.

Reads are for clinicians and admins; receptionists see no clinical detail. Every read is scoped
to the caller's clinics through the patient (404 outside them). With `as_of`, the answer is
rebuilt from the `clinical_read_model` rows recorded up to that time, with the same aggregates
that keep the tables, so that "as of now" and the tables always agree.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from medflow.clinical.domain import VitalSignsRecorded
from medflow.clinical.domain.common import ClinicalAggregate
from medflow.clinical.domain.vitals import latest_values
from medflow.clinical.models import ClinicalEventRecord, LatestVitalSign
from medflow.clinical.projections import STATE_TABLES
from medflow.context import Context, require_role
from medflow.errors import NotFound
from medflow.eventstore.commands import load_aggregate
from medflow.eventstore.events import registry
from medflow.patients.queries import PatientView, get_patient, get_patient_at

READERS = ("doctor", "nurse", "admin")
VITALS = VitalSignsRecorded.event_type


@dataclass(frozen=True)
class Item:
    """One aggregate's state as the API shows it, with its version and recorded times."""

    state: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime

    def out(self) -> dict[str, Any]:
        """Return the state with its version and times."""
        return {**self.state, "version": self.version, "created_at": self.created_at,
                "updated_at": self.updated_at}


def require_reader(ctx: Context) -> None:
    """Refuse callers who may not read clinical detail (receptionists)."""
    require_role(ctx, *READERS)


def patient_in_scope(ctx: Context, patient_id: UUID) -> PatientView:
    """Check the caller may read the patient's clinical record; return the patient."""
    require_reader(ctx)
    return get_patient(ctx, patient_id)


# Current state ----------------------------------------------------------------------------------

def _sort_key(aggregate_type: str):
    if aggregate_type == "Encounter":
        return lambda item: (datetime.fromisoformat(item.state["started_at"]), item.state["id"])
    return lambda item: (item.created_at, item.state["id"])


def list_items(
    ctx: Context, patient_id: UUID, aggregate_type: str, *, as_of: datetime | None = None,
    statuses: Iterable[str] | None = None, encounter_id: UUID | None = None,
) -> list[Item]:
    """Return a patient's encounters, diagnoses, allergies, prescriptions or notes, newest first."""
    patient_in_scope(ctx, patient_id)
    replayed = replay(patient_id, as_of) if as_of is not None else None
    return _items(patient_id, aggregate_type, replayed, statuses, encounter_id)


def _items(
    patient_id: UUID, aggregate_type: str, replayed: "Replayed | None",
    statuses: Iterable[str] | None = None, encounter_id: UUID | None = None,
) -> list[Item]:
    statuses = set(statuses or ())
    if replayed is None:
        _, model, _ = STATE_TABLES[aggregate_type]
        rows = model.objects.filter(patient_id=patient_id)
        if statuses:
            rows = rows.filter(status__in=statuses)
        items = [Item(r.state, r.version, r.created_at, r.updated_at) for r in rows]
    else:
        items = replayed.items.get(aggregate_type, [])
        if statuses:
            items = [i for i in items if _status(aggregate_type, i.state) in statuses]
    if encounter_id is not None:
        items = [i for i in items if i.state.get("encounter_id") == str(encounter_id)]
    return sorted(items, key=_sort_key(aggregate_type), reverse=True)


def _status(aggregate_type: str, state: dict[str, Any]) -> str:
    return state["clinical_status"] if aggregate_type == "Diagnosis" else state["status"]


def get_item(
    ctx: Context, aggregate_type: str, aggregate_id: UUID, *, as_of: datetime | None = None
) -> Item:
    """Return one encounter, diagnosis, allergy, prescription or note (as of a time)."""
    require_reader(ctx)
    cls, model, _ = STATE_TABLES[aggregate_type]
    row = model.objects.filter(id=aggregate_id).first()
    missing = NotFound(f"no {aggregate_type} {aggregate_id}", field="id")
    if row is None:
        raise missing
    try:
        get_patient(ctx, row.patient_id)
    except NotFound:
        raise missing from None
    if as_of is None:
        return Item(row.state, row.version, row.created_at, row.updated_at)
    aggregate = load_aggregate(cls, aggregate_id, as_of=as_of)
    if not aggregate.exists:
        raise NotFound(f"{aggregate_type} {aggregate_id} did not exist at {as_of}", field="as_of")
    times = (
        ClinicalEventRecord.objects.filter(aggregate_id=aggregate_id, version__lte=aggregate.version)
        .order_by("version").values_list("recorded_at", flat=True)
    )
    return Item(aggregate.state(), aggregate.version, times.first(), times.last())


def latest_vitals(ctx: Context, patient_id: UUID, *, as_of: datetime | None = None) -> dict:
    """Return the latest value of each vital sign by name."""
    patient_in_scope(ctx, patient_id)
    return _latest_vitals(patient_id, as_of)


def _latest_vitals(patient_id: UUID, as_of: datetime | None) -> dict[str, dict[str, Any]]:
    if as_of is not None:
        return replay(patient_id, as_of).latest_vitals
    return {
        row.measure: {
            "value": row.value, "unit": row.unit, "measured_at": row.measured_at,
            "event_id": row.event_id, "encounter_id": row.encounter_id,
        }
        for row in LatestVitalSign.objects.filter(patient_id=patient_id).order_by("measure")
    }


def vital_signs_series(
    ctx: Context, patient_id: UUID, *, as_of: datetime | None = None,
    since: datetime | None = None, until: datetime | None = None,
    encounter_id: UUID | None = None, limit: int = 100,
) -> list[ClinicalEventRecord]:
    """Return the latest `limit` sets of vital signs, in the order they were measured."""
    patient_in_scope(ctx, patient_id)
    rows = ClinicalEventRecord.objects.filter(patient_id=patient_id, event_type=VITALS)
    if as_of is not None:
        rows = rows.filter(recorded_at__lte=as_of)
    if since is not None:
        rows = rows.filter(effective_at__gte=since)
    if until is not None:
        rows = rows.filter(effective_at__lte=until)
    if encounter_id is not None:
        rows = rows.filter(encounter_id=encounter_id)
    newest = list(rows.order_by("-effective_at", "-position")[:limit])
    return newest[::-1]


def event_at(aggregate_id: UUID, version: int) -> UUID | None:
    """Return the id of the event at a version of a clinical stream."""
    return (
        ClinicalEventRecord.objects.filter(aggregate_id=aggregate_id, version=version)
        .values_list("id", flat=True).first()
    )


# Replay -----------------------------------------------------------------------------------------

@dataclass
class Replayed:
    """A patient's clinical record rebuilt from its events."""

    items: dict[str, list[Item]]
    latest_vitals: dict[str, dict[str, Any]]


def replay(patient_id: UUID, as_of: datetime | None = None) -> Replayed:
    """Rebuild a patient's clinical record from `clinical_read_model`, up to `as_of`."""
    rows = ClinicalEventRecord.objects.filter(patient_id=patient_id)
    if as_of is not None:
        rows = rows.filter(recorded_at__lte=as_of)
    aggregates: dict[UUID, tuple[ClinicalAggregate, datetime, datetime]] = {}
    latest: dict[str, dict[str, Any]] = {}
    for row in rows.order_by("position"):
        event = registry.decode(row.event_type, row.schema_version, row.data)
        if isinstance(event, VitalSignsRecorded):
            latest = latest_values(latest, event, row.id)
        entry = STATE_TABLES.get(row.aggregate_type)
        if entry is None:
            continue
        aggregate, created, _ = aggregates.get(row.aggregate_id) or (
            entry[0](row.aggregate_id), row.recorded_at, row.recorded_at
        )
        aggregate.when(event)
        aggregate.version = row.version
        aggregates[row.aggregate_id] = (aggregate, created, row.recorded_at)
    items: dict[str, list[Item]] = {}
    for aggregate, created, updated in aggregates.values():
        items.setdefault(aggregate.aggregate_type, []).append(
            Item(aggregate.state(), aggregate.version, created, updated)
        )
    return Replayed(items, latest)


# The chart --------------------------------------------------------------------------------------

ACTIVE_PROBLEMS = ("active", "recurrence", "relapse")
ACTIVE_ALLERGIES = ("active",)
CURRENT_MEDICATIONS = ("pending", "active")


def patient_chart(
    ctx: Context, patient_id: UUID, *, as_of: datetime | None = None, recent_notes: int = 5
) -> dict[str, Any]:
    """Return the chart: demographics, active problems, active allergies (high criticality
    first), current medications, latest vitals, recent notes and open encounters (as of a time)."""
    require_reader(ctx)
    patient = (
        get_patient(ctx, patient_id) if as_of is None
        else get_patient_at(ctx, patient_id, as_of=as_of)
    )

    replayed = replay(patient_id, as_of) if as_of is not None else None

    def items(kind: str, statuses: Iterable[str] | None = None) -> list[dict[str, Any]]:
        return [i.out() for i in _items(patient_id, kind, replayed, statuses)]

    return {
        "patient": {**patient.data, "version": patient.version},
        "active_problems": items("Diagnosis", ACTIVE_PROBLEMS),
        # A prescriber must not miss a high-criticality allergy at the end of a long list.
        "allergies": sorted(items("Allergy", ACTIVE_ALLERGIES),
                            key=lambda a: a["criticality"] != "high"),
        "medications": items("Prescription", CURRENT_MEDICATIONS),
        "latest_vitals": replayed.latest_vitals if replayed else _latest_vitals(patient_id, None),
        "recent_notes": items("ClinicalNote")[:recent_notes],
        "open_encounters": items("Encounter", ("in_progress",)),
        "as_of": as_of,
    }
