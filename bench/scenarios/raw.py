"""Raw baselines: the same event rows written with a plain driver connection (bench.rawdb), no
Django, no store, no service.

The scenarios interleave these with the store's own writes, so that both see a table of the
same size.
"""

from datetime import UTC, datetime
from uuid import uuid4

import orjson

from bench.rawdb import RawDB
from bench.stats import now_ns
from medflow.eventstore.backends import dialect

_raw: RawDB | None = None


def db() -> RawDB:
    """Return this process's raw connection, opened on first use."""
    global _raw
    if _raw is None:
        _raw = RawDB.from_django()
    return _raw


def captured(func, *args, **kwargs) -> list[str]:
    """Run `func` once (untimed) and return the SQL statements it sent, values written in, so
    that the plain driver can replay exactly the same work (`replay`)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # The query log keeps at most 9000 entries, and a full one yields an empty capture: start
    # each capture on an empty log.
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as queries:
        func(*args, **kwargs)
    statements = [query["sql"] for query in queries.captured_queries]
    if not statements:
        raise RuntimeError(f"captured no statement from {func.__name__}")
    return statements


def replay(statements: list[str]) -> int:
    """Run captured statements through the plain driver, fetching every row; return the ns."""
    raw = db()
    start = now_ns()
    for sql in statements:
        raw.fetchall_literal(sql)
    return now_ns() - start


def insert_sql() -> str:
    """Return a one-row INSERT into event_store with this backend's JSON casts."""
    json = dialect().json_param
    return (
        "INSERT INTO event_store (id, aggregate_id, aggregate_type, event_type, version,"
        f" timestamp, metadata, event_data) VALUES (%s, %s, %s, %s, %s, %s, {json}, {json})"
    )


def encode_rows(payloads: list[dict], metadata: dict) -> list[tuple]:
    """Encode one new stream's worth of rows, as the store encodes them."""
    d = dialect()
    stream = d.uuid_in(uuid4())
    ts = d.time_in(datetime.now(UTC))
    meta = orjson.dumps({**metadata, "schema_version": 1}).decode()
    return [
        (d.uuid_in(uuid4()), stream, "Patient", "PatientUpdated", version, ts, meta,
         orjson.dumps(payload).decode())
        for version, payload in enumerate(payloads, start=1)
    ]


def insert_one(statement: str, payload: dict, metadata: dict) -> int:
    """Insert one row, committed on its own (autocommit); return the nanoseconds it took."""
    start = now_ns()
    row = encode_rows([payload], metadata)[0]
    db().execute(statement, row)
    return now_ns() - start


def insert_batch(statement: str, payloads: list[dict], metadata: dict) -> int:
    """Insert a batch with executemany in one transaction; return the nanoseconds it took."""
    start = now_ns()
    rows = encode_rows(payloads, metadata)
    raw = db()
    with raw.transaction():
        raw.executemany(statement, rows)
    return now_ns() - start
