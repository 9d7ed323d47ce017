"""Patient chart reads from the read models, on the log the rebuild scenario wrote and rebuilt.

For `--reads` random patients, under `system_context()`: `patients.queries.get_patient`, the
first page of `timeline.queries.patient_timeline`, and the clinical chart
(`clinical.queries.patient_chart`) when the code under test has one. The first two are paired
with the same statements through the plain driver (the floor); each pair alternates which one
goes first.
"""

import importlib
import random

from bench.options import Workload
from bench.progress import progress
from bench.scenarios import raw
from bench.stats import latency_summary, now_ns
from medflow.context import system_context
from medflow.eventstore.backends import dialect
from medflow.patients.queries import get_patient
from medflow.timeline.queries import patient_timeline

WARMUP = 20
PAGE = 50


def chart_function():
    """Return clinical.queries.patient_chart when the code under test has it, else None."""
    try:
        module = importlib.import_module("medflow.clinical.queries")
    except ImportError:
        return None
    return getattr(module, "patient_chart", None)


def _raw_patient(db, key) -> None:
    rows = db.fetchall("SELECT * FROM patient_read_model WHERE id = %s LIMIT 1", [key])
    if not rows:
        raise RuntimeError("raw read found no patient")


def _raw_timeline(db, key) -> None:
    _raw_patient(db, key)
    db.fetchall("SELECT COUNT(*) FROM patient_timeline WHERE patient_id = %s", [key])
    db.fetchall(
        "SELECT * FROM patient_timeline WHERE patient_id = %s"
        " ORDER BY occurred_at DESC, position DESC LIMIT %s", [key, PAGE],
    )


def _timed(func, *args) -> int:
    start = now_ns()
    func(*args)
    return now_ns() - start


def run(workload: Workload) -> dict:
    """Time the reads over random patients of the rebuilt read models."""
    db = raw.db()
    d = dialect()
    ids = [d.uuid_out(row[0]) for row in db.fetchall("SELECT id FROM patient_read_model")]
    if len(ids) < 2:
        raise RuntimeError("no read models to read: run the rebuild scenario first")
    rng = random.Random(99)
    chosen = [rng.choice(ids) for _ in range(WARMUP + workload.reads)]
    ctx = system_context()
    chart = chart_function()

    def page(patient_id) -> None:
        _total, rows = patient_timeline(ctx, patient_id, limit=PAGE)
        if not rows:
            raise RuntimeError("patient_timeline returned no entries")

    samples: dict[str, list[int]] = {k: [] for k in (
        "patient", "raw_patient", "timeline", "raw_timeline", "chart")}
    for index, patient_id in enumerate(progress(chosen, total=len(chosen), desc="reads")):
        key = d.uuid_in(patient_id)
        pairs = [
            (("patient", get_patient, ctx, patient_id), ("raw_patient", _raw_patient, db, key)),
            (("timeline", page, patient_id), ("raw_timeline", _raw_timeline, db, key)),
        ]
        got = {}
        for first, second in pairs:
            order = (first, second) if index % 2 == 0 else (second, first)
            for name, func, *args in order:
                got[name] = _timed(func, *args)
        if chart is not None:
            got["chart"] = _timed(chart, ctx, patient_id)
        if index >= WARMUP:
            for name, value in got.items():
                samples[name].append(value)

    stored = db.fetchall("SELECT COUNT(*) FROM event_store")[0][0]
    figures = {
        "read_patient": {
            "call": "patients.queries.get_patient(system_context(), id)",
            "events_stored": stored, "patients": len(ids), **latency_summary(samples["patient"]),
        },
        "raw_read_patient": {
            "statement": "SELECT * FROM patient_read_model WHERE id = %s (plain driver)",
            **latency_summary(samples["raw_patient"]),
        },
        "read_timeline_page": {
            "call": f"timeline.queries.patient_timeline(system_context(), id, limit={PAGE})",
            "events_stored": stored, **latency_summary(samples["timeline"]),
        },
        "raw_read_timeline_page": {
            "statement": f"patient row; COUNT(*); first {PAGE} entries by time (plain driver)",
            **latency_summary(samples["raw_timeline"]),
        },
    }
    if chart is not None:
        figures["read_chart"] = {
            "call": "clinical.queries.patient_chart(system_context(), id)"
                    " (the benchmark's patients have no clinical events)",
            "events_stored": stored, **latency_summary(samples["chart"]),
        }
    return figures
