"""The event store: append with optimistic concurrency, load a stream, read the global log."""

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
from django.db import connection, transaction

from medflow.errors import VersionConflict
from medflow.eventstore import crypto, sealing
from medflow.eventstore.backends import Dialect, dialect
from medflow.eventstore.events import DomainEvent, registry

# Rows a single INSERT carries; keeps the parameter count under SQLite's limit.
INSERT_CHUNK = 500

# Called after each append with (aggregate type, event count, seconds taken); medflow.ops
# registers its metrics here. Observers must not raise.
append_observers: list[Callable[[str, int, float], None]] = []


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: the domain event plus its place in the log and its metadata."""

    id: UUID
    position: int
    aggregate_id: UUID
    aggregate_type: str
    event_type: str
    version: int
    timestamp: datetime
    metadata: dict[str, Any]
    event: DomainEvent
    # True when the event's personal fields were forgotten and read back as redacted.
    redacted: bool = False

    @property
    def data(self) -> dict[str, Any]:
        """Return the (upcast) payload as JSON-ready data."""
        return self.event.payload()


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended, with metadata of its own (schema version, causation)."""

    event: DomainEvent
    metadata: dict[str, Any]


COLUMNS = (
    "id, position, aggregate_id, aggregate_type, event_type, version, timestamp, metadata,"
    " event_data"
)


def decode_rows(rows: Sequence[Sequence[Any]]) -> list[RecordedEvent]:
    """Turn rows of `COLUMNS` into RecordedEvents: open sealed fields, upcast, validate."""
    d = dialect()
    payloads = [orjson.loads(row[8]) for row in rows]
    keys = crypto.keys_for_reading(sealing.subjects(payloads))
    return [decode_row(row, d, data, keys) for row, data in zip(rows, payloads, strict=True)]


def decode_row(
    row: Sequence[Any], d: Dialect | None = None, data: dict[str, Any] | None = None,
    keys: dict | None = None,
) -> RecordedEvent:
    """Turn one row of `COLUMNS` into a RecordedEvent (see decode_rows for many)."""
    d = d or dialect()
    metadata = orjson.loads(row[7])
    data = orjson.loads(row[8]) if data is None else data
    event_id = d.uuid_out(row[0])
    if keys is None:
        keys = crypto.keys_for_reading(sealing.subjects([data]))
    data, redacted = sealing.open_payload(data, event_id, keys)
    event = registry.decode(row[4], metadata.get("schema_version", 1), data, redacted=redacted)
    return RecordedEvent(
        id=event_id,
        position=row[1],
        aggregate_id=d.uuid_out(row[2]),
        aggregate_type=row[3],
        event_type=row[4],
        version=row[5],
        timestamp=d.time_out(row[6]),
        metadata=metadata,
        event=event,
        redacted=bool(redacted),
    )


def stream_row(aggregate_id: UUID) -> tuple[int, UUID | None] | None:
    """Return the stream's (version, clinic id), or None when it does not exist."""
    d = dialect()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT version, clinic_id FROM streams WHERE aggregate_id = %s",
            [d.uuid_in(aggregate_id)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return row[0], d.uuid_out(row[1]) if row[1] else None


def current_version(aggregate_id: UUID) -> int:
    """Return the stream's version, 0 when it does not exist."""
    d = dialect()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT version FROM streams WHERE aggregate_id = %s", [d.uuid_in(aggregate_id)]
        )
        row = cursor.fetchone()
    return row[0] if row else 0


def _claim_versions(
    cursor, aggregate_id: UUID, aggregate_type: str, expected: int, count: int,
    clinic_id: UUID | None, subject_id: UUID | None, now: datetime,
) -> None:
    """Move the stream from `expected` to `expected + count`, or raise VersionConflict."""
    d = dialect()
    if expected == 0:
        cursor.execute(
            "INSERT INTO streams (aggregate_id, aggregate_type, version, clinic_id, subject_id,"
            " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (aggregate_id) DO NOTHING",
            [
                d.uuid_in(aggregate_id), aggregate_type, count,
                d.uuid_in(clinic_id) if clinic_id else None,
                d.uuid_in(subject_id) if subject_id else None, d.time_in(now), d.time_in(now),
            ],
        )
    else:
        # The row lock this UPDATE takes makes a concurrent writer of the same stream wait for
        # our commit and then find the version moved on.
        cursor.execute(
            "UPDATE streams SET version = %s, updated_at = %s"
            " WHERE aggregate_id = %s AND version = %s",
            [expected + count, d.time_in(now), d.uuid_in(aggregate_id), expected],
        )
    if cursor.rowcount != 1:
        actual = current_version(aggregate_id)
        raise VersionConflict(
            f"stream {aggregate_id} is at version {actual}, not {expected}",
            expected=expected, actual=actual,
        )


def append(
    aggregate_id: UUID,
    aggregate_type: str,
    events: Sequence[DomainEvent | NewEvent],
    expected_version: int,
    metadata: dict[str, Any],
    *,
    clinic_id: UUID | None = None,
) -> list[RecordedEvent]:
    """Append events to one stream atomically; raise VersionConflict if it moved on.

    `metadata` goes on every event; a NewEvent adds metadata of its own.
    Runs inside the caller's transaction when there is one.
    """
    if not events:
        return []
    started = time.perf_counter()
    d = dialect()
    items = [(e.event, e.metadata) if isinstance(e, NewEvent) else (e, {}) for e in events]
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # Lock order: the global-order lock first, then stream rows. A process manager appends
        # to other streams inside the same transaction; were stream rows claimed first, two
        # such transactions could each hold a row the other waits for (a deadlock).
        d.lock_global_order(cursor)
        _claim_versions(
            cursor, aggregate_id, aggregate_type, expected_version, len(events), clinic_id,
            items[0][0].data_subject(aggregate_id), datetime.now(UTC),
        )
        keys: dict = {}
        prepared = []
        for version, (event, extra) in enumerate(items, start=expected_version + 1):
            event_id = uuid4()
            meta = {**metadata, **extra, "schema_version": event.schema_version}
            payload = sealing.seal(event, event.payload(), event_id, aggregate_id, keys)
            prepared.append((event_id, event, meta, payload, version))
        # Take the time under the lock, so that timestamps rise with positions.
        now = datetime.now(UTC)
        rows = [
            (event_id, aggregate_id, aggregate_type, event.event_type, version, now, meta, payload)
            for event_id, event, meta, payload, version in prepared
        ]
        positions = _insert_rows(cursor, rows)
    for observe in append_observers:
        observe(aggregate_type, len(rows), time.perf_counter() - started)
    return [
        RecordedEvent(
            id=event_id, position=position, aggregate_id=aggregate_id,
            aggregate_type=aggregate_type, event_type=event.event_type, version=version,
            timestamp=now, metadata=meta, event=event,
        )
        for (event_id, event, meta, _, version), position in zip(prepared, positions, strict=True)
    ]


def _insert_rows(cursor, rows: list[tuple]) -> list[int]:
    """Insert event rows in chunks and return their positions in order."""
    d = dialect()
    one = f"(%s, %s, %s, %s, %s, %s, {d.json_param}, {d.json_param})"
    positions: list[int] = []
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start:start + INSERT_CHUNK]
        params: list[Any] = []
        for event_id, agg_id, agg_type, event_type, version, ts, meta, data in chunk:
            params += [
                d.uuid_in(event_id), d.uuid_in(agg_id), agg_type, event_type, version,
                d.time_in(ts), orjson.dumps(meta).decode(), orjson.dumps(data).decode(),
            ]
        cursor.execute(
            "INSERT INTO event_store (id, aggregate_id, aggregate_type, event_type, version,"
            " timestamp, metadata, event_data) VALUES "
            + ", ".join([one] * len(chunk))
            + " RETURNING version, position",
            params,
        )
        # RETURNING's row order is not promised, so match positions back by version.
        by_version = dict(cursor.fetchall())
        positions += [by_version[row[4]] for row in chunk]
    return positions


def load(
    aggregate_id: UUID,
    *,
    after_version: int = 0,
    to_version: int | None = None,
    as_of: datetime | None = None,
) -> list[RecordedEvent]:
    """Return a stream's events in version order, optionally bounded by version or time."""
    d = dialect()
    sql = f"SELECT {COLUMNS} FROM event_store WHERE aggregate_id = %s AND version > %s"
    params: list[Any] = [d.uuid_in(aggregate_id), after_version]
    if to_version is not None:
        sql += " AND version <= %s"
        params.append(to_version)
    if as_of is not None:
        sql += " AND timestamp <= %s"
        params.append(d.time_in(as_of))
    sql += " ORDER BY version"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return decode_rows(cursor.fetchall())


def read_rows(after: int = 0, limit: int = 1000) -> list[tuple]:
    """Return raw rows of the global log (COLUMNS order), undecoded, for checks and tools."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {COLUMNS} FROM event_store WHERE position > %s ORDER BY position LIMIT %s",
            [after, limit],
        )
        return cursor.fetchall()


def read_all(after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
    """Return up to `limit` events of the global log with a position above `after`, in order.

    Never skips an event that commits late: appends hold the global-order lock until commit.
    """
    return decode_rows(read_rows(after, limit))


def iter_all(after: int = 0, batch: int = 1000) -> Iterator[RecordedEvent]:
    """Yield the whole global log after `after`, in batches."""
    while True:
        events = read_all(after, batch)
        if not events:
            return
        yield from events
        after = events[-1].position


def last_position() -> int:
    """Return the highest position in the log (0 when empty)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(position), 0) FROM event_store")
        return cursor.fetchone()[0]
