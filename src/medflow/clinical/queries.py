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

import orjson
from django.db import connection

from medflow.clinical.domain import VitalSignsRecorded
from medflow.clinical.domain.common import ClinicalAggregate
from medflow.clinical.domain.vitals import latest_values
from medflow.clinical.models import ClinicalEventRecord, LatestVitalSign
from medflow.clinical.projections import STATE_TABLES
from medflow.context import Context, require_role
from medflow.errors import NotFound
from medflow.eventstore.backends import dialect
from medflow.eventstore.commands import load_aggregate
from medflow.eventstore.events import registry
from medflow.eventstore.store import fast_cursor
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
    d = dialect()
    with fast_cursor() as cursor:
        cursor.execute(
            "SELECT measure, value, unit, measured_at, event_id, encounter_id"
            f" FROM {connection.ops.quote_name(LatestVitalSign._meta.db_table)}"
            " WHERE patient_id = %s ORDER BY measure",
            [d.uuid_in(patient_id)],
        )
        rows = cursor.fetchall()
    return {
        measure: {
            "value": value, "unit": unit, "measured_at": d.time_out(measured_at),
            "event_id": d.uuid_out(event_id),
            "encounter_id": d.uuid_out(encounter_id) if encounter_id else None,
        }
        for measure, value, unit, measured_at, event_id, encounter_id in rows
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

    if as_of is None:
        found = _chart_items(patient_id)
        latest_vitals = _latest_vitals(patient_id, None)
    else:
        replayed = replay(patient_id, as_of)
        found = {kind: _items(patient_id, kind, replayed, statuses)
                 for kind, statuses in CHART_SECTIONS.items()}
        latest_vitals = replayed.latest_vitals

    def items(kind: str) -> list[dict[str, Any]]:
        return [i.out() for i in found[kind]]

    return {
        "patient": {**patient.data, "version": patient.version},
        "active_problems": items("Diagnosis"),
        # A prescriber must not miss a high-criticality allergy at the end of a long list.
        "allergies": sorted(items("Allergy"), key=lambda a: a["criticality"] != "high"),
        "medications": items("Prescription"),
        "latest_vitals": latest_vitals,
        "recent_notes": items("ClinicalNote")[:recent_notes],
        "open_encounters": items("Encounter"),
        "as_of": as_of,
    }


# The chart's sections: which items of each kind it shows (None: all of them).
CHART_SECTIONS: dict[str, tuple[str, ...] | None] = {
    "Diagnosis": ACTIVE_PROBLEMS, "Allergy": ACTIVE_ALLERGIES, "Prescription": CURRENT_MEDICATIONS,
    "ClinicalNote": None, "Encounter": ("in_progress",),
}


def _chart_items(patient_id: UUID) -> dict[str, list[Item]]:
    """Return the current items of every chart section, read in one statement (a chart is read
    far more often than it is written: one round trip instead of one per section)."""
    d = dialect()
    parts, params = [], []
    for kind, statuses in CHART_SECTIONS.items():
        table = STATE_TABLES[kind][1]._meta.db_table
        # The kind is a constant of this module, never input: it goes in the SQL as a literal.
        sql = (f"SELECT '{kind}' AS kind, state, version, created_at, updated_at"
               f" FROM {connection.ops.quote_name(table)} WHERE patient_id = %s")
        params.append(d.uuid_in(patient_id))
        if statuses:
            sql += f" AND status IN ({', '.join(['%s'] * len(statuses))})"
            params += statuses
        parts.append(sql)
    with fast_cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    found: dict[str, list[Item]] = {kind: [] for kind in CHART_SECTIONS}
    for kind, state, version, created_at, updated_at in rows:
        found[kind].append(Item(state if isinstance(state, dict) else orjson.loads(state), version,
                                d.time_out(created_at), d.time_out(updated_at)))
    return {kind: sorted(items, key=_sort_key(kind), reverse=True)
            for kind, items in found.items()}
