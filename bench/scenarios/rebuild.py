"""Full rebuild of every read model from a log of `--rebuild-events` events.

The log: `rebuild_patients` patients, each one PatientRegistered and then PatientUpdated events
(phone, email, address or name changes), written fast with `store.append` (no read models are
touched while writing). Then `rebuild.rebuild_many` rebuilds every projection of the catalogue
in one pass over the log (what `medflow projections rebuild --all` runs): each page of the log
goes to every projection's shadow tables, then each is swapped in.

Raw floor (plain driver, one pass): read the log in pages of `--rebuild-batch` rows by position and, per
page, insert one timeline-shaped row per event and insert or update one patient-read-model-shaped
row per patient of the page, into scratch copies of those two tables. It decodes nothing: the
payload text goes into the JSON columns as stored, the other columns take placeholders.

On PostgreSQL each timed phase starts on a settled server (`settle`): the log vacuumed and a
checkpoint taken, so that neither phase pays for the writes of the one before it.
"""

import random
import re
from datetime import UTC, date, datetime
from uuid import uuid4

from django.db import connection, transaction

from bench.options import Workload
from bench.progress import counter, progress, say
from bench.scenarios import raw
from bench.stats import now_ns
from medflow.context import system_context
from medflow.eventstore import store
from medflow.eventstore.backends import dialect
from medflow.patients.domain import Address, PatientRegistered, PatientUpdated
from medflow.projections.catalog import all_projections
from medflow.projections.rebuild import rebuild_many

SCRATCH = "bench_raw_"
CLINICS = 20


def _update(rng: random.Random, number: int) -> PatientUpdated:
    roll = rng.random()
    if roll < 0.6:
        return PatientUpdated(phone=f"+1 555 {number:07d}")
    if roll < 0.8:
        return PatientUpdated(email=f"p{number}@example.org")
    if roll < 0.95:
        return PatientUpdated(address=Address(lines=[f"{number} Main St"], city="Springfield",
                                              postal_code=f"{number % 100000:05d}", country="US"))
    return PatientUpdated(family_name=f"Renamed{number}")


def build_log(workload: Workload) -> dict:
    """Append the rebuild log; return its size and how long it took to write."""
    rng = random.Random(1234)
    clinics = [uuid4() for _ in range(CLINICS)]
    metadata = system_context().metadata("BenchRebuildLog")
    per_patient = workload.events_per_patient
    patients = workload.rebuild_patients
    group = max(1, workload.batch // per_patient)  # patients per transaction
    start = now_ns()
    number = 0
    for first in progress(range(0, patients, group), total=-(-patients // group), desc="write log"):
        with transaction.atomic():
            for index in range(first, min(first + group, patients)):
                clinic = clinics[index % CLINICS]
                events = [PatientRegistered(
                    clinic_id=clinic, mrn=f"RB-{index:07d}", given_names="Grace",
                    family_name=f"Rebuild{index}", birth_date=date(1950 + index % 60, 1, 1),
                    phone="+1 000 0000000",
                )]
                for _ in range(per_patient - 1):
                    number += 1
                    events.append(_update(rng, number))
                store.append(uuid4(), "Patient", events, 0, metadata, clinic_id=clinic)
    seconds = (now_ns() - start) / 1e9
    total = patients * per_patient
    return {"events": total, "patients": patients, "seconds": round(seconds, 2),
            "events_per_s": round(total / seconds, 1)}


def _scratch_tables() -> None:
    """Create empty scratch copies of patient_read_model and patient_timeline (no foreign keys)."""
    with connection.cursor() as cursor:
        for live in ("patient_read_model", "patient_timeline"):
            scratch = SCRATCH + live
            cursor.execute(f"DROP TABLE IF EXISTS {scratch}")
            if connection.vendor == "postgresql":
                cursor.execute(f"CREATE TABLE {scratch} (LIKE {live} INCLUDING ALL)")
                continue
            cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [live])
            cursor.execute(cursor.fetchone()[0].replace(f'"{live}"', f'"{scratch}"', 1))
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                           " AND tbl_name = %s AND sql IS NOT NULL", [live])
            for name, sql in cursor.fetchall():
                sql = re.sub(rf'"{name}"', f'"{SCRATCH}{name}"', sql, count=1)
                cursor.execute(sql.replace(f'"{live}"', f'"{scratch}"', 1))


def _columns(table: str) -> list[str]:
    """Return the table's writable columns (the read model gains some as MedFlow evolves; a
    generated one, such as the search key on PostgreSQL, is computed by the server)."""
    with connection.cursor() as cursor:
        generated: set[str] = set()
        if connection.vendor == "postgresql":
            cursor.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
                           " AND attgenerated <> ''", [table])
            generated = {row[0] for row in cursor.fetchall()}
        return [c.name for c in connection.introspection.get_table_description(cursor, table)
                if c.name not in generated]


def raw_floor(batch: int) -> dict:
    """Replay the log through the plain driver into the scratch tables; return the timings."""
    _scratch_tables()
    db = raw.db()
    d = dialect()
    json = d.json_param
    insert_timeline = (
        f"INSERT INTO {SCRATCH}patient_timeline (position, event_id, patient_id, aggregate_id,"
        " aggregate_type, event_type, version, kind, summary, occurred_at, recorded_at, username,"
        f" role, reason, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, {json})"
    )
    # Payloads are not decoded (personal fields may be sealed): the patient row's columns take
    # placeholders, and current_data the event's payload as stored.
    columns = _columns("patient_read_model")
    insert_patient = (
        f"INSERT INTO {SCRATCH}patient_read_model ({', '.join(columns)})"
        f" VALUES ({', '.join(json if c == 'current_data' else '%s' for c in columns)})"
    )
    update_patient = (
        f"UPDATE {SCRATCH}patient_read_model SET current_data = {json}, last_updated = %s,"
        " version = %s WHERE id = %s"
    )
    select = (
        "SELECT id, position, aggregate_id, aggregate_type, event_type, version, timestamp,"
        " metadata, event_data FROM event_store WHERE position > %s ORDER BY position LIMIT %s"
    )
    read_ns = 0
    events = 0
    after = 0
    start = now_ns()
    while True:
        t0 = now_ns()
        rows = db.fetchall(select, [after, batch])
        read_ns += now_ns() - t0
        if not rows:
            break
        timeline, new, changed = [], [], {}
        for event_id, position, agg, agg_type, event_type, version, ts, _meta, data in rows:
            timeline.append((position, event_id, agg, agg, agg_type, event_type, version, "patient",
                             event_type, ts, ts, "system", "system", "", data))
            if event_type == "PatientRegistered":
                values = {
                    "id": agg, "clinic_id": agg, "mrn": str(agg), "family_name": "raw",
                    "given_names": "raw", "search_name": "raw raw", "birth_date": "1970-01-01",
                    "archived": False, "forgotten": False, "current_data": data,
                    "last_updated": ts, "version": version,
                }
                new.append(tuple(values[c] for c in columns))
            else:
                changed[agg] = (data, ts, version, agg)
        with db.transaction():
            db.executemany(insert_timeline, timeline)
            if new:
                db.executemany(insert_patient, new)
            if changed:
                db.executemany(update_patient, list(changed.values()))
        events += len(rows)
        after = rows[-1][1]
    seconds = (now_ns() - start) / 1e9
    with connection.cursor() as cursor:
        for live in ("patient_read_model", "patient_timeline"):
            cursor.execute(f"DROP TABLE IF EXISTS {SCRATCH}{live}")
    return {
        "statement": f"SELECT log pages of {batch}; executemany INSERT timeline rows and"
                     " INSERT/UPDATE patient rows per page (plain driver)",
        "events": events, "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds, 1),
        "read_only_seconds": round(read_ns / 1e9, 2),
        "read_only_events_per_s": round(events / (read_ns / 1e9), 1),
    }


def rebuild_all(batch: int) -> dict:
    """Rebuild every projection of the catalogue from the whole log, as
    `medflow projections rebuild --all` does: one pass over the log for all of them."""
    head = store.last_position()
    projections = dict(sorted(all_projections().items()))
    say(f"    rebuild --all ({len(projections)} projections, one pass) ...")
    with counter(total=head, desc="rebuild --all") as advance:
        start = now_ns()
        replayed = rebuild_many(list(projections.values()), batch=batch, restart=True,
                                progress=advance)
        elapsed = now_ns() - start
    seconds = elapsed / 1e9
    return {
        "call": "medflow.projections.rebuild.rebuild_many(all projections, restart=True)"
                " (the CLI's rebuild --all)",
        "log_events": head, "seconds": round(seconds, 2),
        "events_per_s": round(head / seconds, 1),
        "projections": {
            name: {"kind": projection.kind, "events": replayed[name],
                   "tables": [model._meta.db_table for model in projection.tables]}
            for name, projection in projections.items()
        },
    }


def settle() -> str:
    """Let the server finish with what was written before a timed phase, so that neither phase
    pays for the one before it: VACUUM (the log's hint bits and visibility map, set once by
    whoever reads the new rows first) and a CHECKPOINT (the dirty buffers written out, not by
    the next phase's backends). Return what was done."""
    if connection.vendor != "postgresql":
        return "nothing (SQLite)"
    db = raw.db()
    db.execute("VACUUM ANALYZE event_store")
    try:
        db.execute("CHECKPOINT")
    except Exception as exc:  # CHECKPOINT needs a superuser or pg_checkpoint
        return f"VACUUM ANALYZE event_store (no CHECKPOINT: {str(exc).strip()})"
    return "VACUUM ANALYZE event_store; CHECKPOINT"


def run(workload: Workload) -> dict:
    """Write the log, time the raw floor, then time the rebuild of every projection."""
    say(f"    writing a log of {workload.rebuild_patients * workload.events_per_patient:,} events ...")
    log = build_log(workload)
    say(f"    wrote it in {log['seconds']} s; raw floor ...")
    settled = settle()
    floor = raw_floor(workload.rebuild_batch)
    settle()
    figures = rebuild_all(workload.rebuild_batch)
    return {
        "settled_before_each": settled,
        "rebuild_log": {**log, "written_at": datetime.now(UTC).isoformat(timespec="seconds")},
        "rebuild_all": figures,
        "raw_rebuild_floor": floor,
    }
