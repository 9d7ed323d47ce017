"""Patient chart reads from the read models, on the log the rebuild scenario wrote and rebuilt.

Before timing, CHARTED patients get a clinical record through the clinical services (an open
encounter with vital signs, two active diagnoses, two prescriptions and a note: 7 commands
each), so that their chart has something in every section.

For `--reads` random patients, under `system_context()`: `patients.queries.get_patient` and the
first page of `timeline.queries.patient_timeline`, each paired with the same statements through
the plain driver (the floor; each pair alternates which one goes first). The clinical chart
(`clinical.queries.patient_chart`) is read for the same number of draws among the charted
patients.
"""

import importlib
import random

from bench.options import Workload
from bench.progress import progress, say
from bench.scenarios import raw
from bench.stats import latency_summary, now_ns
from medflow.context import system_context
from medflow.eventstore.backends import dialect
from medflow.patients.queries import get_patient
from medflow.timeline.queries import patient_timeline

WARMUP = 20
PAGE = 50
CHARTED = 100  # patients given a clinical record, whose charts are read
CHART_SECTIONS = ("active_problems", "medications", "latest_vitals", "recent_notes",
                  "open_encounters")


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
    db.fetchall(
        "SELECT *, COUNT(*) OVER () FROM patient_timeline WHERE patient_id = %s"
        " ORDER BY occurred_at DESC, position DESC LIMIT %s OFFSET 0", [key, PAGE],
    )


def give_records(ctx, patient_ids) -> int:
    """Give each patient a clinical record through the clinical services; return the commands."""
    from medflow.clinical import services as clinical

    commands = 0
    for patient_id in progress(patient_ids, total=len(patient_ids), desc="clinical records"):
        encounter = clinical.start_encounter(ctx, patient_id=patient_id, provider_id=None,
                                             reason="annual check-up").aggregate_id
        clinical.record_vital_signs(ctx, patient_id=patient_id, encounter_id=encounter,
                                    systolic=128, diastolic=82, heart_rate=71, spo2=98,
                                    temperature_c=36.8, weight_kg=74.5)
        for code, display in (("I10", "Essential hypertension"), ("E11.9", "Type 2 diabetes")):
            clinical.add_diagnosis(ctx, patient_id=patient_id, code_system="ICD-10", code=code,
                                   display=display, encounter_id=encounter)
        for code, name in (("197361", "amlodipine 5 MG"), ("860975", "metformin 500 MG")):
            clinical.prescribe_medication(ctx, patient_id=patient_id, drug_code=code,
                                          drug_name=name, dose="1 tablet", route="oral",
                                          frequency="daily", encounter_id=encounter)
        clinical.draft_note(ctx, patient_id=patient_id, encounter_id=encounter,
                            subjective="No complaints.", assessment="Stable.",
                            plan="Review in 3 months.")
        commands += 7
    return commands


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
    charted = ids[:CHARTED]
    chart_draws = [rng.choice(charted) for _ in chosen]
    if chart is not None:
        say(f"    clinical records for {len(charted)} patients ...")
        record_commands = give_records(ctx, charted)
        sample = chart(ctx, charted[0])
        empty = [name for name in CHART_SECTIONS if not sample[name]]
        if empty:
            raise RuntimeError(f"a charted patient's chart has empty sections: {empty}")

    def page(patient_id) -> None:
        _total, rows = patient_timeline(ctx, patient_id, limit=PAGE)
        if not rows:
            raise RuntimeError("patient_timeline returned no entries")

    samples: dict[str, list[int]] = {k: [] for k in (
        "patient", "raw_patient", "timeline", "raw_timeline", "chart", "raw_chart")}
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
            statements = raw.captured(chart, ctx, chart_draws[index])
            if index % 2 == 0:
                got["chart"] = _timed(chart, ctx, chart_draws[index])
                got["raw_chart"] = raw.replay(statements)
            else:
                got["raw_chart"] = raw.replay(statements)
                got["chart"] = _timed(chart, ctx, chart_draws[index])
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
            "call": "clinical.queries.patient_chart(system_context(), id)",
            "charted_patients": len(charted), "record_commands": record_commands,
            "sections": list(CHART_SECTIONS),
            "events_stored": stored, **latency_summary(samples["chart"]),
        }
        figures["raw_read_chart"] = {
            "statement": "the chart's statements, captured once per read, replayed (plain driver)",
            **latency_summary(samples["raw_chart"]),
        }
    return figures
