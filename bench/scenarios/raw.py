"""Raw baselines: the same event rows written with the driver cursor, no store, no service."""

from datetime import UTC, datetime
from uuid import uuid4

import orjson
from django.db import connection, transaction

from bench.progress import progress
from bench.stats import latency_summary, now_ns, throughput_summary
from medflow.eventstore.backends import dialect

WARMUP = 20


def insert_sql() -> str:
    """Return a one-row INSERT into event_store with this backend's JSON casts."""
    json = dialect().json_param
    return (
        "INSERT INTO event_store (id, aggregate_id, aggregate_type, event_type, version,"
        f" timestamp, metadata, event_data) VALUES (%s, %s, %s, %s, %s, %s, {json}, {json})"
    )


def _rows(payloads: list[dict], metadata: dict) -> list[tuple]:
    """Encode one stream's worth of rows, as the store encodes them."""
    d = dialect()
    stream = d.uuid_in(uuid4())
    ts = d.time_in(datetime.now(UTC))
    meta = orjson.dumps({**metadata, "schema_version": 1}).decode()
    return [
        (d.uuid_in(uuid4()), stream, "Patient", "PatientUpdated", version, ts, meta,
         orjson.dumps(payload).decode())
        for version, payload in enumerate(payloads, start=1)
    ]


def single_inserts(n: int, payload: dict, metadata: dict) -> dict:
    """Time `n` one-row INSERTs, each in its own transaction (the floor under one command)."""
    statement = insert_sql()
    samples: list[int] = []
    for index in progress(range(WARMUP + n), total=WARMUP + n, desc="raw single insert"):
        start = now_ns()
        rows = _rows([payload], metadata)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, rows[0])
        elapsed = now_ns() - start
        if index >= WARMUP:
            samples.append(elapsed)
    return {"statement": "INSERT ... VALUES (1 row); COMMIT", **latency_summary(samples)}


def bulk_inserts(events: int, payloads: list[dict], metadata: dict) -> dict:
    """Time executemany of the bulk rows, one batch per transaction (the floor under append)."""
    statement = insert_sql()
    batches = events // len(payloads)
    samples: list[int] = []
    for _ in progress(range(batches), total=batches, desc="raw bulk insert"):
        start = now_ns()
        rows = _rows(payloads, metadata)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(statement, rows)
        samples.append(now_ns() - start)
    return {
        "statement": f"executemany(INSERT ... 1 row) x {len(payloads)}; COMMIT",
        **throughput_summary(batches * len(payloads), samples),
    }
