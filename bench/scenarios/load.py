"""Aggregate load: rebuild one long Patient stream, without and with a snapshot near its head."""

from datetime import date
from uuid import uuid4

from django.db import transaction

from bench.options import Workload
from bench.progress import progress
from bench.scenarios import raw
from bench.stats import latency_summary, now_ns
from medflow.context import system_context
from medflow.eventstore import snapshots, store
from medflow.eventstore.backends import dialect
from medflow.eventstore.commands import load_aggregate
from medflow.patients.domain import Patient, PatientRegistered, PatientUpdated

WARMUP = 2


def build_stream(workload: Workload):
    """Append a registration and `stream - 1` phone changes to a new Patient stream."""
    patient_id = uuid4()
    metadata = system_context().metadata("BenchLoadStream")
    first = PatientRegistered(
        clinic_id=uuid4(), mrn="LOAD-1", given_names="Ada", family_name="Longstream",
        birth_date=date(1980, 1, 1),
    )
    events = [first] + [
        PatientUpdated(phone=f"+1 555 {index:07d}") for index in range(1, workload.stream)
    ]
    for start in range(0, len(events), workload.batch):
        with transaction.atomic():
            store.append(patient_id, "Patient", events[start:start + workload.batch], start,
                         metadata)
    return patient_id


def _time_loads(patient_id, loads: int, desc: str) -> tuple[list[int], Patient]:
    samples: list[int] = []
    patient = None
    for index in progress(range(WARMUP + loads), total=WARMUP + loads, desc=desc):
        start = now_ns()
        patient = load_aggregate(Patient, patient_id)
        elapsed = now_ns() - start
        if index >= WARMUP:
            samples.append(elapsed)
    return samples, patient


def _time_raw_select(patient_id, loads: int, expected: int) -> list[int]:
    """Time the store's SELECT of the whole stream with fetchall (plain driver), decoding nothing."""
    samples: list[int] = []
    key = dialect().uuid_in(patient_id)
    db = raw.db()
    for index in progress(range(WARMUP + loads), total=WARMUP + loads, desc="raw select"):
        start = now_ns()
        rows = db.fetchall(
            "SELECT id, position, aggregate_id, aggregate_type, event_type, version,"
            " timestamp, metadata, event_data FROM event_store"
            " WHERE aggregate_id = %s AND version > %s ORDER BY version",
            [key, 0],
        )
        elapsed = now_ns() - start
        if len(rows) != expected:
            raise RuntimeError(f"raw select read {len(rows)} rows, not {expected}")
        if index >= WARMUP:
            samples.append(elapsed)
    return samples


def _time_raw_snapshot_select(patient_id, loads: int, lag: int, schema_version: int) -> list[int]:
    """Time the two SELECTs of a snapshot load (snapshot row, then the events after it)."""
    samples: list[int] = []
    key = dialect().uuid_in(patient_id)
    db = raw.db()
    for index in progress(range(WARMUP + loads), total=WARMUP + loads, desc="raw snapshot select"):
        start = now_ns()
        snap = db.fetchall(
            "SELECT version, schema_version, state FROM snapshots"
            " WHERE aggregate_id = %s AND schema_version = %s ORDER BY version DESC LIMIT 1",
            [key, schema_version],
        )
        rows = db.fetchall(
            "SELECT id, position, aggregate_id, aggregate_type, event_type, version,"
            " timestamp, metadata, event_data FROM event_store"
            " WHERE aggregate_id = %s AND version > %s ORDER BY version",
            [key, snap[0][0]],
        )
        elapsed = now_ns() - start
        if len(rows) != lag:
            raise RuntimeError(f"raw snapshot select read {len(rows)} rows, not {lag}")
        if index >= WARMUP:
            samples.append(elapsed)
    return samples


def run(workload: Workload) -> dict:
    """Time load_aggregate on the long stream with no snapshot, then with one near the head."""
    patient_id = build_stream(workload)
    snapshots.delete_for(patient_id)
    plain_ns, plain = _time_loads(patient_id, workload.loads, "load, no snapshot")
    raw_ns = _time_raw_select(patient_id, workload.loads, workload.stream)

    at = workload.stream - workload.snapshot_lag
    past = load_aggregate(Patient, patient_id, to_version=at)
    snapshots.save(patient_id, Patient.aggregate_type, past.version, Patient.state_version,
                   past.snapshot_state())
    snap_ns, snapped = _time_loads(patient_id, workload.loads, "load, snapshot")
    raw_snap_ns = _time_raw_snapshot_select(patient_id, workload.loads, workload.snapshot_lag,
                                            Patient.state_version)

    if plain.version != workload.stream or snapped.state() != plain.state():
        raise RuntimeError("loading from the snapshot gave another state than a full replay")
    return {
        "load_no_snapshot": {
            "stream_events": workload.stream, "events_replayed": workload.stream,
            **latency_summary(plain_ns),
        },
        "load_snapshot": {
            "stream_events": workload.stream, "snapshot_version": at,
            "events_replayed": workload.snapshot_lag, **latency_summary(snap_ns),
        },
        "raw_select_snapshot": {
            "statement": "SELECT snapshot row; SELECT events after it; fetchall (no decoding)",
            "rows": workload.snapshot_lag, **latency_summary(raw_snap_ns),
        },
        "raw_select_stream": {
            "statement": "SELECT <stream> ORDER BY version; fetchall (no decoding)",
            "rows": workload.stream, **latency_summary(raw_ns),
        },
    }
