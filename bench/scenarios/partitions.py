"""Stream loads and log pages on a monthly-partitioned event_store (PostgreSQL only): with one
monthly partition, then with `--partition-months` of them.

A stream load (`WHERE aggregate_id = ? AND version > ?`) has no timestamp to prune partitions
by, so it probes the (aggregate_id, version) index of every partition; a page of the global log
(`WHERE position > ? ORDER BY position LIMIT ?`) merges every partition's position index. Both
should cost more as partitions accumulate; this measures how much.

The database, fresh from `migrate` (which makes event_store partitioned):
1. One monthly partition: the empty future months `migrate` created are dropped, leaving this
   month's partition and the default one. `--partition-events` other events are inserted with
   the plain driver (1000-event streams, timestamp now), then two sets of STREAMS Patient
   streams of `--partition-stream` events with `store.append`.
2. Many: `ensure_partitions` adds the previous `months - 1` months; the other events are moved
   across them (an UPDATE of their timestamps: row i goes back i % months months). The first
   streams stay in this month ("young"); the second ones get their timestamps spread over every
   month, oldest versions in the oldest month ("spread").
3. Floor: a plain (unpartitioned) copy of the same rows with the same indexes, made once the
   rows are written, read with the same statements through the plain driver.

Each MedFlow call (`load_aggregate`, no snapshot; or `store.read_all`) is timed beside its
statement through the plain driver on event_store and on the unpartitioned copy, in turn (the
order rotates), so that the three share whatever else the machine is doing.
"""

import random
from datetime import UTC, date, datetime
from uuid import UUID, uuid4

from django.db import connection, transaction

from bench.options import Workload
from bench.progress import progress, say
from bench.scenarios import raw
from bench.stats import latency_summary, now_ns
from medflow.context import system_context
from medflow.eventstore import store
from medflow.eventstore.commands import load_aggregate
from medflow.ops import partitions
from medflow.patients.domain import Patient, PatientRegistered, PatientUpdated

WARMUP = 10
STREAMS = 20  # streams per variant, loaded in turn
PLAIN = "bench_plain_event_store"
STREAM_SQL = (
    "SELECT id, position, aggregate_id, aggregate_type, event_type, version, timestamp,"
    " metadata, event_data FROM {table} WHERE aggregate_id = %s AND version > %s ORDER BY version"
)
PAGE_SQL = (
    "SELECT id, position, aggregate_id, aggregate_type, event_type, version, timestamp,"
    " metadata, event_data FROM {table} WHERE position > %s ORDER BY position LIMIT %s"
)


def _this_month() -> date:
    return partitions.month_start(datetime.now(UTC).date())


def keep_one_month() -> None:
    """Drop every monthly partition but this month's (they are empty in a fresh database)."""
    keep = {partitions.partition_name(_this_month()), partitions.DEFAULT_PARTITION}
    with connection.cursor() as cursor:
        for part in partitions.list_partitions():
            if part.name in keep:
                continue
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {part.name})")
            if cursor.fetchone()[0]:
                raise RuntimeError(f"partition {part.name} is not empty: not a fresh database")
            cursor.execute(f"DROP TABLE {part.name}")


def layout() -> dict:
    """Return the monthly partitions and the rows each partition holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text, COUNT(*) FROM event_store GROUP BY 1")
        rows = dict(cursor.fetchall())
    names = [p.name for p in partitions.list_partitions()]
    monthly = [n for n in names if n != partitions.DEFAULT_PARTITION]
    return {"monthly_partitions": len(monthly), "default_partition": len(names) > len(monthly),
            "rows_per_partition": {n: rows.get(n, 0) for n in names}}


def write_background(count: int, batch: int) -> int:
    """Insert `count` other events with the plain driver; return the last position written."""
    statement = raw.insert_sql()
    metadata = system_context().metadata("BenchPartitionBackground")
    payloads = [{"phone": f"+1 555 {index:07d}"} for index in range(batch)]
    for _ in progress(range(count // batch), total=count // batch, desc="other events"):
        raw.insert_batch(statement, payloads, metadata)
    return store.last_position()


def write_streams(length: int) -> list[UUID]:
    """Append STREAMS Patient streams of `length` events each (one transaction per stream)."""
    metadata = system_context().metadata("BenchPartitionStream")
    ids = []
    for index in range(STREAMS):
        patient_id = uuid4()
        events = [PatientRegistered(
            clinic_id=uuid4(), mrn=f"PART-{index}", given_names="Ada",
            family_name=f"Partition{index}", birth_date=date(1980, 1, 1),
        )] + [PatientUpdated(phone=f"+1 555 {n:07d}") for n in range(1, length)]
        with transaction.atomic():
            store.append(patient_id, "Patient", events, 0, metadata)
        ids.append(patient_id)
    return ids


def spread(ids: list[UUID], months: int, length: int) -> None:
    """Move each stream's events back over `months` months, its first versions the oldest."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE event_store SET timestamp = timestamp"
            " - make_interval(months => %s - ((version - 1) * %s / %s))"
            " WHERE aggregate_id = ANY(%s)", [months - 1, months, length, ids])
        cursor.execute("SELECT COUNT(DISTINCT tableoid) FROM event_store WHERE aggregate_id = %s",
                       [ids[0]])
        touched = cursor.fetchone()[0]
    if touched != months:
        raise RuntimeError(f"a spread stream lies in {touched} partitions, not {months}")


def vacuum_analyze(table: str = "event_store") -> None:
    """VACUUM ANALYZE (outside a transaction), so that every variant runs on fresh statistics."""
    raw.db().execute(f"VACUUM ANALYZE {table}")


def interleaved(count: int, ops: dict, expected: int, desc: str) -> dict:
    """Call each op(i) `WARMUP + count` times, rotating which goes first; each returns how many
    events it read. Return each op's latency summary (warm-up left out)."""
    samples: dict[str, list[int]] = {name: [] for name in ops}
    names = list(ops)
    for index in progress(range(WARMUP + count), total=WARMUP + count, desc=desc):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            start = now_ns()
            read = ops[name](index)
            elapsed = now_ns() - start
            if read != expected:
                raise RuntimeError(f"{desc}: {name} read {read} events, not {expected}")
            if index >= WARMUP:
                samples[name].append(elapsed)
    return {name: latency_summary(values) for name, values in samples.items()}


def time_loads(ids: list[UUID], count: int, length: int, desc: str) -> dict:
    """Time load_aggregate of the streams in turn, beside the store's stream SELECT through the
    plain driver on event_store and on the unpartitioned copy."""
    db = raw.db()
    on_store, on_plain = STREAM_SQL.format(table="event_store"), STREAM_SQL.format(table=PLAIN)
    return interleaved(count, {
        "medflow": lambda i: load_aggregate(Patient, ids[i % len(ids)]).version,
        "raw": lambda i: len(db.fetchall(on_store, [ids[i % len(ids)], 0])),
        "plain": lambda i: len(db.fetchall(on_plain, [ids[i % len(ids)], 0])),
    }, length, desc)


def time_pages(count: int, page: int, desc: str) -> dict:
    """Time pages of the global log from random positions (store.read_all), beside its SELECT
    through the plain driver on event_store and on the unpartitioned copy."""
    db = raw.db()
    on_store, on_plain = PAGE_SQL.format(table="event_store"), PAGE_SQL.format(table=PLAIN)
    rng = random.Random(7)
    head = store.last_position()
    starts = [rng.randrange(0, max(1, head - page)) for _ in range(WARMUP + count)]
    return interleaved(count, {
        "medflow": lambda i: len(store.read_all(starts[i], page)),
        "raw": lambda i: len(db.fetchall(on_store, [starts[i], page])),
        "plain": lambda i: len(db.fetchall(on_plain, [starts[i], page])),
    }, page, desc)


def plain_copy() -> None:
    """Copy event_store into an unpartitioned table with the store's read indexes."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {PLAIN}")
        cursor.execute(f"CREATE TABLE {PLAIN} AS SELECT * FROM event_store")
        cursor.execute(f"ALTER TABLE {PLAIN} ADD PRIMARY KEY (position)")
        cursor.execute(f"CREATE UNIQUE INDEX {PLAIN}_stream ON {PLAIN} (aggregate_id, version)")
    vacuum_analyze(PLAIN)


def _figures(variant: str, shape: dict, loads: dict, pages: dict | None, length: int,
             page: int) -> dict:
    out = {
        f"partition_load_{variant}": {
            "call": "commands.load_aggregate(Patient, id), no snapshot", "stream_events": length,
            "streams": STREAMS, **shape, **loads["medflow"],
        },
        f"raw_partition_load_{variant}": {
            "statement": "the store's stream SELECT, fetchall (plain driver, no decoding)",
            **loads["raw"],
        },
        f"raw_plain_load_{variant}": {
            "statement": "the same SELECT on an unpartitioned copy of the rows (plain driver)",
            **loads["plain"],
        },
    }
    if pages:
        out[f"partition_page_{variant}"] = {
            "call": f"store.read_all(after, {page}) from a random position", **pages["medflow"],
        }
        out[f"raw_partition_page_{variant}"] = {
            "statement": "the store's log-page SELECT, fetchall (plain driver)", **pages["raw"],
        }
        out[f"raw_plain_page_{variant}"] = {
            "statement": "the same SELECT on an unpartitioned copy of the rows (plain driver)",
            **pages["plain"],
        }
    return out


def run(workload: Workload) -> dict:
    """Measure stream loads and log pages with one monthly partition, then with many."""
    if connection.vendor != "postgresql" or not partitions.is_partitioned():
        return {"partitions_skipped": {"reason": "event_store is not partitioned here"}}
    months, length = workload.partition_months, workload.partition_stream
    page, count = workload.batch, workload.partition_loads

    keep_one_month()
    say(f"    {workload.partition_events:,} other events, 2 x {STREAMS} streams of {length} ...")
    background_end = write_background(workload.partition_events, workload.batch)
    young = write_streams(length)
    old = write_streams(length)
    plain_copy()
    vacuum_analyze()
    figures = _figures("1", layout(), time_loads(young, count, length, "loads, 1 partition"),
                       time_pages(count, page, "pages, 1 partition"), length, page)

    say(f"    {months} monthly partitions: moving the other events across them ...")
    first = partitions.add_months(_this_month(), -(months - 1))
    partitions.ensure_partitions(ahead=0, since=first)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE event_store SET timestamp = timestamp"
            " - make_interval(months => (position %% %s)::int) WHERE position <= %s",
            [months, background_end])
    spread(old, months, length)
    vacuum_analyze()
    shape = layout()
    if shape["monthly_partitions"] != months:
        raise RuntimeError(f"{shape['monthly_partitions']} monthly partitions, not {months}")
    figures |= _figures("many_young", {**shape, "stream_partitions": 1},
                        time_loads(young, count, length, f"loads, {months} partitions"),
                        time_pages(count, page, f"pages, {months} partitions"), length, page)
    figures |= _figures("many_spread", {"monthly_partitions": months,
                                        "stream_partitions": months},
                        time_loads(old, count, length, f"loads, spread over {months}"),
                        None, length, page)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {PLAIN}")
    figures["partition_setup"] = {
        "other_events": workload.partition_events, "streams_per_variant": STREAMS,
        "stream_events": length, "months": months, "page": page, "loads": count,
        "events_stored": store.last_position(),
    }
    return figures
