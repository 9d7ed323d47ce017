"""Bulk append throughput: store.append of whole batches, one transaction and stream each."""

from uuid import uuid4

from django.db import transaction

from bench.options import Workload
from bench.progress import progress
from bench.scenarios import raw
from bench.stats import now_ns, throughput_summary
from medflow.context import system_context
from medflow.eventstore import store
from medflow.patients.domain import PatientUpdated


def batch_events(size: int) -> list[PatientUpdated]:
    """Return `size` PatientUpdated events, each with its own phone number."""
    return [PatientUpdated(phone=f"+1 555 {index:07d}") for index in range(size)]


def run(workload: Workload) -> dict:
    """Append the bulk events to new streams, each batch followed by the same rows raw."""
    events = batch_events(workload.batch)
    payloads = [event.payload() for event in events]
    metadata = system_context().metadata("BenchBulkAppend")
    statement = raw.insert_sql()
    batches = workload.events // workload.batch
    store_ns: list[int] = []
    raw_ns: list[int] = []
    for _ in progress(range(batches), total=batches, desc="store.append + raw"):
        start = now_ns()
        with transaction.atomic():
            store.append(uuid4(), "Patient", events, 0, metadata)
        store_ns.append(now_ns() - start)
        raw_ns.append(raw.insert_batch(statement, payloads, metadata))
    return {
        "bulk_append": {
            "call": f"store.append({workload.batch} events, new stream) in transaction.atomic()",
            **throughput_summary(workload.batch, store_ns),
        },
        "raw_bulk_insert": {
            "statement": f"executemany(INSERT 1 row) x {workload.batch}; COMMIT",
            **throughput_summary(workload.batch, raw_ns),
        },
    }
