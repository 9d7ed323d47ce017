"""The event store: append with optimistic concurrency, load a stream, read the global log."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
from django.db import connection, transaction

from medflow.errors import VersionConflict
from medflow.eventstore.backends import Dialect, dialect
from medflow.eventstore.events import DomainEvent, registry

# Rows a single INSERT carries; keeps the parameter count under SQLite's limit.
INSERT_CHUNK = 500


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


def decode_row(row: Sequence[Any], d: Dialect | None = None) -> RecordedEvent:
    """Turn a row of `COLUMNS` into a RecordedEvent, upcasting and validating its payload."""
    d = d or dialect()
    metadata = orjson.loads(row[7])
    data = orjson.loads(row[8])
    event = registry.decode(row[4], metadata.get("schema_version", 1), data)
    return RecordedEvent(
        id=d.uuid_out(row[0]),
        position=row[1],
        aggregate_id=d.uuid_out(row[2]),
        aggregate_type=row[3],
        event_type=row[4],
        version=row[5],
        timestamp=d.time_out(row[6]),
        metadata=metadata,
        event=event,
    )


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
    clinic_id: UUID | None, now: datetime,
) -> None:
    """Move the stream from `expected` to `expected + count`, or raise VersionConflict."""
    d = dialect()
    if expected == 0:
        cursor.execute(
            "INSERT INTO streams (aggregate_id, aggregate_type, version, clinic_id, created_at,"
            " updated_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (aggregate_id) DO NOTHING",
            [
                d.uuid_in(aggregate_id), aggregate_type, count,
                d.uuid_in(clinic_id) if clinic_id else None, d.time_in(now), d.time_in(now),
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
    d = dialect()
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        now = datetime.now(UTC)
        _claim_versions(
            cursor, aggregate_id, aggregate_type, expected_version, len(events), clinic_id, now
        )
        d.lock_global_order(cursor)
        # Take the time after the lock, so that timestamps rise with positions.
        now = datetime.now(UTC)
        rows = []
        recorded_meta = []
        for offset, item in enumerate(events):
            event, extra = (item.event, item.metadata) if isinstance(item, NewEvent) else (item, {})
            meta = {**metadata, **extra, "schema_version": event.schema_version}
            recorded_meta.append((event, meta))
            rows.append((
                uuid4(), aggregate_id, aggregate_type, event.event_type,
                expected_version + offset + 1, now, meta, event.payload(),
            ))
        positions = _insert_rows(cursor, rows)
    return [
        RecordedEvent(
            id=row[0], position=position, aggregate_id=aggregate_id,
            aggregate_type=aggregate_type, event_type=row[3], version=row[4], timestamp=now,
            metadata=meta, event=event,
        )
        for row, position, (event, meta) in zip(rows, positions, recorded_meta, strict=True)
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
        return [decode_row(row, d) for row in cursor.fetchall()]


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
    d = dialect()
    return [decode_row(row, d) for row in read_rows(after, limit)]


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
