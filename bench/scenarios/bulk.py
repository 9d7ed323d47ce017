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
    """Append the bulk events to new streams, then insert the same rows raw; time both."""
    events = batch_events(workload.batch)
    metadata = system_context().metadata("BenchBulkAppend")
    batches = workload.events // workload.batch
    samples: list[int] = []
    for _ in progress(range(batches), total=batches, desc="store.append"):
        start = now_ns()
        with transaction.atomic():
            store.append(uuid4(), "Patient", events, 0, metadata)
        samples.append(now_ns() - start)
    payloads = [event.payload() for event in events]
    return {
        "bulk_append": {
            "call": f"store.append({workload.batch} events, new stream) in transaction.atomic()",
            **throughput_summary(batches * workload.batch, samples),
        },
        "raw_bulk_insert": raw.bulk_inserts(workload.events, payloads, metadata),
    }
