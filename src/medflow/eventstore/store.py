"""The event store: append with optimistic concurrency, load a stream, read the global log."""

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from medflow.errors import RuleViolated, VersionConflict
from medflow.eventstore import crypto, pipeline, sealing
from medflow.eventstore.backends import GLOBAL_ORDER_LOCK, Dialect, dialect
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
    # The payload, when the append computed it already (else `data` computes it).
    known_payload: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        """Return the (upcast) payload as JSON-ready data (shared: never change it)."""
        if self.known_payload is None:
            # Kept: a replay hands each event to several projections that read it.
            object.__setattr__(self, "known_payload", self.event.payload())
        return self.known_payload  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended, with metadata of its own (schema version, causation)."""

    event: DomainEvent
    metadata: dict[str, Any]


COLUMNS = (
    "id, position, aggregate_id, aggregate_type, event_type, version, timestamp, metadata,"
    " event_data"
)


def select_events(sql: str, params: Sequence[Any]) -> list[tuple]:
    """Run a SELECT whose columns start with `COLUMNS` (written `{columns}` in `sql`) and return
    its rows: on PostgreSQL in binary, prepared once it repeats, so that ids and times arrive as
    UUIDs and datetimes without parsing text (the JSON columns come as text, for orjson)."""
    if connection.vendor == "postgresql":
        with binding_cursor() as cursor:
            cursor.execute(sql.format(columns=_COLUMNS_AS_TEXT), params, binary=True)
            return cursor.fetchall()
    with connection.cursor() as cursor:
        cursor.execute(sql.format(columns=COLUMNS), params)
        return cursor.fetchall()


_COLUMNS_AS_TEXT = COLUMNS.replace("metadata,", "metadata::text,").replace(
    " event_data", " event_data::text")


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
    schema_version = metadata.get("schema_version", 1)
    opened, redacted = sealing.open_payload(data, event_id, keys)
    event = registry.decode(row[4], schema_version, opened, redacted=redacted)
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
        # The payload as stored is the payload as recorded (`payload()` at the append), unless
        # it was upcast or redacted: kept, a replay need not dump every event again. Only where
        # JSON is kept as jsonb: the opened fields come last, and elsewhere JSON text keeps the
        # order of its keys.
        known_payload=opened if (d.vendor == "postgresql" and not redacted
                                 and schema_version == event.schema_version) else None,
    )


@dataclass(frozen=True, slots=True)
class StreamHead:
    """What a command needs of a stream before it runs: its version (0 when new), its clinic, and
    the live data key of its subject for sealing (absent when none exists yet or it was
    destroyed: sealing then creates or refuses it), with that key's row (subject, wrapped key,
    master key id). `presumed`: taken from the cache instead of read (see `append`)."""

    version: int
    clinic_id: UUID | None = None
    keys: dict = field(default_factory=dict)
    key_row: tuple[UUID, str, str] | None = None
    presumed: bool = False


def open_stream(aggregate_id: UUID) -> StreamHead:
    """Return the stream's head and its subject's data key, read in one statement."""
    d = dialect()
    with fast_cursor() as cursor:
        cursor.execute(
            "SELECT s.version, s.clinic_id, s.subject_id, k.wrapped_key, k.master_key_id"
            " FROM streams s LEFT JOIN data_keys k"
            " ON k.subject_id = s.subject_id AND k.destroyed_at IS NULL"
            " WHERE s.aggregate_id = %s",
            [d.uuid_in(aggregate_id)],
        )
        row = cursor.fetchone()
    if row is None:
        return StreamHead(0)
    version, clinic_id, subject_id, wrapped, master_id = row
    keys, key_row = {}, None
    if subject_id is not None and wrapped:
        subject = d.uuid_out(subject_id)
        keys[subject] = crypto.data_key(subject, wrapped, master_id)
        key_row = (subject, wrapped, master_id)
    return StreamHead(version, d.uuid_out(clinic_id) if clinic_id else None, keys, key_row)


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
    keys: dict | None = None,
    presumed: StreamHead | None = None,
) -> list[RecordedEvent] | None:
    """Append events to one stream atomically; raise VersionConflict if it moved on.

    `metadata` goes on every event; a NewEvent adds metadata of its own. `keys` may carry the
    subject's data key already read (see `open_stream`). Runs inside the caller's transaction
    when there is one.

    `presumed` (PostgreSQL) is a head taken from the cache, not read, whose version is
    `expected_version`: its key is used, the statement also checks that the key is still the
    one stored, and when the stream or the key moved on, nothing is written and None returned.
    """
    if not events:
        return []
    started = time.perf_counter()
    d = dialect()
    if presumed is not None:
        if d.vendor != "postgresql" or presumed.version != expected_version:
            raise ValueError("a presumed head is for PostgreSQL, at the expected version")
        keys = presumed.keys
    items = [(e.event, e.metadata) if isinstance(e, NewEvent) else (e, {}) for e in events]
    pg = d.vendor == "postgresql"
    keys, subject, keyless, fresh_key = _sealing_keys(aggregate_id, items, expected_version,
                                                      keys, new_key=pg)
    with transaction.atomic(savepoint=False):
        if not pg and keyless:
            # Sealing will create or look up the subject's key: do it under the global-order
            # lock, as every writer does, lest a writer holding that lock wait for our key row
            # while we wait for the lock. On PostgreSQL the statement that stores or reads the
            # key takes the lock first (the append's own, or crypto.key_for_writing's), saving a
            # round trip.
            with connection.cursor() as cursor:
                d.lock_global_order(cursor)
        if pg:
            appended = _append_pg(aggregate_id, aggregate_type, expected_version, clinic_id,
                                  subject, items, metadata, keys, fresh_key, presumed)
            if appended is None and presumed is not None:
                return None
            if appended is None:
                # The subject had a key already (or the stream exists), and nothing was
                # written: seal again with the stored key, which is looked up (or refused, if
                # destroyed) as for any other append.
                del keys[subject]
                appended = _append_pg(aggregate_id, aggregate_type, expected_version, clinic_id,
                                      subject, items, metadata, keys)
            prepared, positions, now = appended
        else:
            prepared = _prepare(aggregate_id, items, expected_version, metadata, keys)
            positions, now = _append_sqlite(aggregate_id, aggregate_type, expected_version,
                                            clinic_id, subject, prepared)
    for observe in append_observers:
        observe(aggregate_type, len(prepared), time.perf_counter() - started)
    return [
        RecordedEvent(
            id=event_id, position=position, aggregate_id=aggregate_id,
            aggregate_type=aggregate_type, event_type=event.event_type, version=version,
            timestamp=now, metadata=meta, event=event, known_payload=plain,
        )
        for (event_id, event, meta, _, version, plain), position
        in zip(prepared, positions, strict=True)
    ]


def _sealing_keys(
    aggregate_id: UUID, items: list[tuple[DomainEvent, dict]], expected_version: int,
    keys: dict | None, *, new_key: bool,
) -> tuple[dict, UUID | None, bool, crypto.NewDataKey | None]:
    """Return the keys to seal with, the events' data subject, whether that subject's key is
    missing from them, and (with `new_key`, for a new stream) a new key made for it."""
    keys = dict(keys or {})
    subject = items[0][0].data_subject(aggregate_id)
    keyless = (subject is not None and subject not in keys
               and any(event.personal_fields for event, _ in items))
    # A new stream's subject (a patient being registered) has no key yet as a rule: make one
    # here, and let the append's own statement store it (PostgreSQL), a round trip fewer.
    fresh_key = (crypto.new_data_key(subject) if new_key and keyless and expected_version == 0
                 else None)
    if fresh_key is not None:
        keys[subject] = fresh_key.key
    return keys, subject, keyless, fresh_key


def _prepare(
    aggregate_id: UUID, items: list[tuple[DomainEvent, dict]], expected_version: int,
    metadata: dict[str, Any], keys: dict,
) -> list[tuple]:
    """Give each event its id, version and metadata, and seal its payload."""
    prepared = []
    for version, (event, extra) in enumerate(items, start=expected_version + 1):
        event_id = uuid4()
        meta = {**metadata, **extra, "schema_version": event.schema_version}
        plain = event.payload()
        payload = sealing.seal(event, plain, event_id, aggregate_id, keys)
        prepared.append((event_id, event, meta, payload, version, plain))
    return prepared


def _append_sqlite(
    aggregate_id: UUID, aggregate_type: str, expected: int, clinic_id: UUID | None,
    subject: UUID | None, prepared: list[tuple],
) -> tuple[list[int], datetime]:
    d = dialect()
    with connection.cursor() as cursor:
        # Lock order: the global-order lock first, then stream rows. A process manager appends
        # to other streams inside the same transaction; were stream rows claimed first, two
        # such transactions could each hold a row the other waits for (a deadlock).
        d.lock_global_order(cursor)
        _claim_versions(cursor, aggregate_id, aggregate_type, expected, len(prepared), clinic_id,
                        subject, datetime.now(UTC))
        # Take the time under the lock, so that timestamps rise with positions.
        now = datetime.now(UTC)
        rows = [
            (event_id, aggregate_id, aggregate_type, event.event_type, version, now, meta, payload)
            for event_id, event, meta, payload, version, _ in prepared
        ]
        return _insert_rows(cursor, rows), now


# One statement, one round trip: take the global-order lock, move the stream's version, insert
# the events. The lock is a one-time filter of the claim, so it is held before the stream row is
# locked (the lock order of `_append_sqlite`) and before any position is drawn. The time is read
# from the server's clock once the lock is held, so that timestamps rise with positions whichever
# application server appends; every event of the append shares it.
_CLAIM_MOVED_PG = (
    "UPDATE streams SET version = %s, updated_at = clock_timestamp()"
    " WHERE aggregate_id = %s AND version = %s AND (SELECT pg_advisory_xact_lock(%s)) IS NOT NULL"
    " RETURNING updated_at"
)
# The same claim by a command that presumed the stream's head (see `append`): it also checks
# that the subject's key is the one presumed (a destroyed key is stored as '').
_CLAIM_MOVED_KEYED_PG = _CLAIM_MOVED_PG.replace(
    " RETURNING", " AND EXISTS (SELECT 1 FROM data_keys WHERE subject_id = %s"
    " AND wrapped_key = %s) RETURNING")
_CLAIM_NEW_PG = (
    "INSERT INTO streams (aggregate_id, aggregate_type, version, clinic_id, subject_id,"
    " created_at, updated_at) SELECT %s, %s, %s, %s, %s, t.now, t.now"
    " FROM (SELECT clock_timestamp() AS now) AS t"
    " WHERE (SELECT pg_advisory_xact_lock(%s)) IS NOT NULL"
    " ON CONFLICT (aggregate_id) DO NOTHING RETURNING updated_at"
)
# The same claim of a new stream, storing its subject's new data key first. The key row is
# inserted unless the subject has one; the claim (and so every event) follows only if it was.
# The global-order lock is the key insert's one-time filter, so it is held before the key row is
# waited on (the lock order of `crypto.key_for_writing`), and the time is read once it is held.
_CLAIM_NEW_WITH_KEY_PG = (
    "created AS (INSERT INTO data_keys (subject_id, wrapped_key, master_key_id, created_at)"
    " SELECT %s, %s, %s, clock_timestamp() WHERE (SELECT pg_advisory_xact_lock(%s)) IS NOT NULL"
    " ON CONFLICT (subject_id) DO NOTHING RETURNING clock_timestamp() AS now),"
    " claim AS (INSERT INTO streams (aggregate_id, aggregate_type, version, clinic_id,"
    " subject_id, created_at, updated_at) SELECT %s, %s, %s, %s, %s, created.now, created.now"
    " FROM created ON CONFLICT (aggregate_id) DO NOTHING RETURNING updated_at)"
)
_INSERT_CLAIMED_PG = (
    " INSERT INTO event_store (id, aggregate_id, aggregate_type, event_type, version, timestamp,"
    " metadata, event_data) SELECT x.i, %s, %s, x.e, x.v, claim.updated_at, x.m::jsonb,"
    " x.d::jsonb FROM claim, unnest(%b::uuid[], %b::text[], %b::int[], %b::text[], %b::text[])"
    " WITH ORDINALITY AS x (i, e, v, m, d, n) ORDER BY x.n"
    " RETURNING version, position, timestamp"
)
# The same insert for a single event, the common command, with plain parameters: dumping five
# one-element arrays took a tenth of a millisecond of client time.
_INSERT_ONE_CLAIMED_PG = (
    " INSERT INTO event_store (id, aggregate_id, aggregate_type, event_type, version, timestamp,"
    " metadata, event_data) SELECT %s, %s, %s, %s, %s, claim.updated_at, %s::jsonb, %s::jsonb"
    " FROM claim RETURNING version, position, timestamp"
)


# An append of more events than this goes in statements of this many: the server stores one
# while the client seals and encodes the next.
STREAM_CHUNK = 100

# The events of an append after its first statement's: stored only if the first statement
# stored its first event (with that event's time).
_INSERT_FOLLOWING_PG = (
    "INSERT INTO event_store (id, aggregate_id, aggregate_type, event_type, version, timestamp,"
    " metadata, event_data) SELECT x.i, %s, %s, x.e, x.v, f.timestamp, x.m::jsonb, x.d::jsonb"
    " FROM (SELECT timestamp FROM event_store WHERE aggregate_id = %s AND version = %s"
    " AND id = %s) AS f, unnest(%b::uuid[], %b::text[], %b::int[], %b::text[], %b::text[])"
    " WITH ORDINALITY AS x (i, e, v, m, d, n) ORDER BY x.n RETURNING version, position, timestamp"
)


def _append_pg(
    aggregate_id: UUID, aggregate_type: str, expected: int, clinic_id: UUID | None,
    subject: UUID | None, items: list[tuple[DomainEvent, dict]], metadata: dict[str, Any],
    keys: dict, fresh_key: crypto.NewDataKey | None = None, presumed: StreamHead | None = None,
) -> tuple[list[tuple], list[int], datetime] | None:
    """Seal the events, claim the stream's versions and insert them, storing the subject's
    `fresh_key` first when given; return the prepared events, their positions and time, or None
    if that key was not stored because the subject had one, or if a `presumed` head was not the
    stream's (nothing is written then).

    Up to STREAM_CHUNK events go in one statement. More go in one exchange of several, each sent
    as soon as it is sealed and encoded, the first claiming the versions of all."""
    count = len(items)
    prepared: list[tuple] = []
    if count <= STREAM_CHUNK:
        prepared = _prepare(aggregate_id, items, expected, metadata, keys)
        sql, params = _append_statement(aggregate_id, aggregate_type, expected, clinic_id,
                                        subject, prepared, fresh_key, presumed)
        # Binary results: positions and times come back without text parsing.
        if pipeline.can_begin():
            # The command's first statement: BEGIN travels with it.
            inserted = pipeline.run(sql, params, begin=True, binary=True)
        else:
            with binding_cursor() as cursor:
                cursor.execute(sql, params, binary=True)
                inserted = cursor.fetchall()
    else:
        # Sealing runs while the exchange is open, where no other statement may run: read (or
        # create) every key it needs first.
        _fetch_missing_keys(((aggregate_id, event) for event, _ in items), keys)
        prepared = _prepare(aggregate_id, items[:STREAM_CHUNK], expected, metadata, keys)

        def statements() -> Iterator[pipeline.Statement]:
            sql, params = _append_statement(aggregate_id, aggregate_type, expected, clinic_id,
                                            subject, prepared, fresh_key, presumed,
                                            claimed=count)
            yield sql, params, True
            first_id, first_version = prepared[0][0], prepared[0][4]
            for start in range(STREAM_CHUNK, count, STREAM_CHUNK):
                chunk = _prepare(aggregate_id, items[start:start + STREAM_CHUNK],
                                 expected + start, metadata, keys)
                prepared.extend(chunk)
                yield _INSERT_FOLLOWING_PG, [
                    aggregate_id, aggregate_type, aggregate_id, first_version, first_id,
                    *_insert_arrays(chunk)], True

        inserted = [row for rows in pipeline.run_many(statements(), begin=pipeline.can_begin(),
                                                      streamed=True) for row in rows]
    if len(inserted) != count:
        # The claim found the stream at another version (or already there), or the subject's
        # key already there: nothing was written.
        if fresh_key is not None or presumed is not None:
            return None
        actual = current_version(aggregate_id)
        raise VersionConflict(
            f"stream {aggregate_id} is at version {actual}, not {expected}",
            expected=expected, actual=actual,
        )
    return (prepared, *_positions(prepared, inserted))


def _fetch_missing_keys(events: Iterable[tuple[UUID, DomainEvent]], keys: dict) -> None:
    """Put in `keys` the data key of every subject whose personal fields these events (with
    their stream's id) will seal, reading or creating the missing ones (and refusing destroyed
    ones) as sealing would: only for events with a personal field set."""
    for aggregate_id, event in events:
        if not event.personal_fields.isdisjoint(event.model_fields_set):
            subject = event.data_subject(aggregate_id)
            if subject is not None and keys.get(subject) is None:
                keys[subject] = crypto.key_for_writing(subject)


def _insert_arrays(prepared: list[tuple]) -> list[list[Any]]:
    """Return the array parameters of the events' insert: ids, types, versions, metadata and
    payloads (as JSON text)."""
    return [[p[0] for p in prepared], [p[1].event_type for p in prepared],
            [p[4] for p in prepared], [orjson.dumps(p[2]).decode() for p in prepared],
            [orjson.dumps(p[3]).decode() for p in prepared]]


def _positions(prepared: list[tuple], inserted: list[tuple]) -> tuple[list[int], datetime]:
    by_version = {version: position for version, position, _ in inserted}
    return [by_version[p[4]] for p in prepared], dialect().time_out(inserted[0][2])


def _append_statement(
    aggregate_id: UUID, aggregate_type: str, expected: int, clinic_id: UUID | None,
    subject: UUID | None, prepared: list[tuple], fresh_key: crypto.NewDataKey | None,
    presumed: StreamHead | None, *, checked: bool = False, claimed: int | None = None,
) -> tuple[str, list[Any]]:
    """Return the append's statement (claim, then insert) and its parameters; `checked`, one
    that fails (MF001) when it wrote nothing. The claim moves the stream by `claimed` versions
    (default: the events given)."""
    count = len(prepared) if claimed is None else claimed
    if presumed is not None and presumed.key_row is not None:
        claim = f"claim AS ({_CLAIM_MOVED_KEYED_PG})"
        claim_params = [expected + count, aggregate_id, expected, GLOBAL_ORDER_LOCK,
                        presumed.key_row[0], presumed.key_row[1]]
    elif fresh_key is not None:
        claim = _CLAIM_NEW_WITH_KEY_PG
        claim_params = [subject, fresh_key.wrapped, fresh_key.master_id, GLOBAL_ORDER_LOCK,
                        aggregate_id, aggregate_type, count, clinic_id, subject]
    elif expected == 0:
        claim = f"claim AS ({_CLAIM_NEW_PG})"
        claim_params = [aggregate_id, aggregate_type, count, clinic_id, subject, GLOBAL_ORDER_LOCK]
    else:
        claim = f"claim AS ({_CLAIM_MOVED_PG})"
        claim_params = [expected + count, aggregate_id, expected, GLOBAL_ORDER_LOCK]
    if len(prepared) == 1:
        event_id, event, meta, payload, version, _ = prepared[0]
        insert = _INSERT_ONE_CLAIMED_PG
        params = [*claim_params, event_id, aggregate_id, aggregate_type, event.event_type,
                  version, orjson.dumps(meta).decode(), orjson.dumps(payload).decode()]
    else:
        insert = _INSERT_CLAIMED_PG
        params = [*claim_params, aggregate_id, aggregate_type, *_insert_arrays(prepared)]
    if not checked:
        return f"WITH {claim}{insert}", params
    # The statements sent after it cannot see whether it wrote: it fails (MF001) when not.
    return (f"WITH {claim}, ins AS ({insert.strip()}) SELECT version, position, timestamp"
            " FROM ins UNION ALL SELECT NULL, NULL, NULL"
            " WHERE medflow_expect_rows((SELECT count(*) FROM ins)) < 0"), params


@dataclass(frozen=True, slots=True)
class Pending:
    """A value the append's statement decides (an event's position or time), handed to inline
    projections before it runs (see `append_deferred`): SQL that reads it back, in the same
    transaction, once the statement ran. Row writes put it in their statement in place of a
    parameter (`eventstore.combined`); nothing else may use it."""

    sql: str
    params: tuple


@dataclass
class DeferredAppend:
    """An append whose statement is sent later, with the read-model writes of its events."""

    sql: str
    params: list[Any]
    # The events with Pending positions and time, for the inline projections.
    pending: list[RecordedEvent]
    prepared: list[tuple]
    started: float = field(default_factory=time.perf_counter)
    # The rows its statement answered, once sent.
    inserted: list[tuple] | None = None

    def recorded(self) -> list[RecordedEvent]:
        """Return the events as stored (once the statement was sent)."""
        if self.inserted is None:
            raise RuntimeError("the deferred append was not sent")
        positions, now = _positions(self.prepared, self.inserted)
        for observe in append_observers:
            observe(self.pending[0].aggregate_type, len(self.prepared),
                    time.perf_counter() - self.started)
        return [replace(event, position=position, timestamp=now)
                for event, position in zip(self.pending, positions, strict=True)]


def append_deferred(
    aggregate_id: UUID, aggregate_type: str, events: Sequence[DomainEvent], expected_version: int,
    metadata: dict[str, Any], *, clinic_id: UUID | None = None, keys: dict | None = None,
    presumed: StreamHead | None = None,
) -> DeferredAppend | None:
    """Prepare an append as `append` would (PostgreSQL) without sending it; None when it needs
    a statement first (an existing stream whose subject's key is not in hand).

    Its statement fails (MF001) where `append` would write nothing: a stream that moved on, a
    presumed key no longer stored, or a subject that has a key already; the caller's transaction
    then rolls back, and the command runs again without deferring.
    """
    if presumed is not None:
        keys = presumed.keys
    items = [(event, {}) for event in events]
    keys, subject, keyless, fresh_key = _sealing_keys(aggregate_id, items, expected_version,
                                                      keys, new_key=True)
    if keyless and fresh_key is None:
        return None
    prepared = _prepare(aggregate_id, items, expected_version, metadata, keys)
    sql, params = _append_statement(aggregate_id, aggregate_type, expected_version, clinic_id,
                                     subject, prepared, fresh_key, presumed, checked=True)
    count = len(prepared)
    # Positions are drawn in order under the global-order lock, the last one by this session.
    now = Pending("(SELECT updated_at FROM streams WHERE aggregate_id = %s)", (aggregate_id,))
    pending = [
        RecordedEvent(
            id=event_id, aggregate_id=aggregate_id, aggregate_type=aggregate_type,
            event_type=event.event_type, version=version, metadata=meta, event=event,
            known_payload=plain, timestamp=now,  # type: ignore[arg-type]
            position=Pending("(currval('event_store_position_seq') - %s)",  # type: ignore[arg-type]
                             (count - index,)),
        )
        for index, (event_id, event, meta, _, version, plain) in enumerate(prepared, start=1)
    ]
    return DeferredAppend(sql, params, pending, prepared)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """An event for `append_batch`: the stream it goes to, metadata of its own, and its id
    (known before it is stored, so that a caller can write rows naming it first)."""

    aggregate_id: UUID
    aggregate_type: str
    event: DomainEvent
    metadata: dict[str, Any]
    event_id: UUID = field(default_factory=uuid4)


def append_batch(
    events: Sequence[StreamEvent],
    expected_versions: Mapping[UUID, int],
    *,
    clinic_ids: Mapping[UUID, UUID | None] | None = None,
) -> list[RecordedEvent]:
    """Append events to many streams atomically; raise VersionConflict if any stream moved on.

    Each stream's events take the versions after its entry in `expected_versions`, in list order,
    and positions follow list order across streams. `clinic_ids` gives the clinic of the streams
    created here (expected version 0). One statement claims the new streams, one moves the
    existing ones, and multi-row INSERTs store the events. Runs inside the caller's transaction
    when there is one; nothing is written when a version does not match.
    """
    if not events:
        return []
    started = time.perf_counter()
    d = dialect()
    clinic_ids = clinic_ids or {}
    counts = Counter(item.aggregate_id for item in events)
    missing = set(counts) - set(expected_versions)
    if missing:
        raise ValueError(f"no expected version given for stream {sorted(map(str, missing))[0]}")
    firsts: dict[UUID, StreamEvent] = {}
    for item in events:
        firsts.setdefault(item.aggregate_id, item)
    keys = _keys_for_sealing(events)
    versions = {agg_id: expected_versions[agg_id] for agg_id in counts}
    # Sealed and encoded before the lock when every key they need exists (only a holder of the
    # lock may create one): the lock is held from the claim to the commit, and concurrent batch
    # writers (the legacy migration's workers) wait for it. Otherwise part by part under it.
    sealed = _sealed_subjects(events)
    at_hand = all(keys.get(subject) is not None for subject in sealed)
    ready = _prepare_many(events, versions, keys) if at_hand else None
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        d.lock_global_order(cursor)  # first, as in `append` (see the lock order note there)
        _claim_many(cursor, {
            agg_id: (first.aggregate_type, expected_versions[agg_id], counts[agg_id],
                     clinic_ids.get(agg_id), first.event.data_subject(agg_id))
            for agg_id, first in firsts.items()
        })
        # Keys read before the lock (all of them, or those of the subjects that had one).
        _refuse_forgotten(sealed & keys.keys())
        pg = d.vendor == "postgresql"
        if pg and ready is None:
            # Sealing runs while the inserts' exchange is open, where no other statement may
            # run: read (or create) every key it needs first.
            _fetch_missing_keys(((item.aggregate_id, item.event) for item in events), keys)
        # Take the time under the lock, so that timestamps rise with positions.
        now = datetime.now(UTC)
        prepared: list[tuple] = []

        def chunks() -> Iterator[list[tuple]]:
            for start in range(0, len(events), STREAM_CHUNK):
                chunk = (ready[start:start + STREAM_CHUNK] if ready is not None
                         else _prepare_many(events[start:start + STREAM_CHUNK], versions, keys))
                prepared.extend(chunk)
                yield [(event_id, item.aggregate_id, item.aggregate_type, item.event.event_type,
                        version, now, meta, payload)
                       for event_id, item, meta, payload, version, _ in chunk]

        if pg:
            positions = _insert_rows_pg(chunks())
        else:
            positions = _insert_rows(cursor, [row for chunk in chunks() for row in chunk])
    took = time.perf_counter() - started
    by_type = Counter(item.aggregate_type for item in events)
    for observe in append_observers:
        for aggregate_type, count in by_type.items():
            observe(aggregate_type, count, took * count / len(events))
    return [
        RecordedEvent(
            id=event_id, position=position, aggregate_id=item.aggregate_id,
            aggregate_type=item.aggregate_type, event_type=item.event.event_type,
            version=version, timestamp=now, metadata=meta, event=item.event, known_payload=plain,
        )
        for (event_id, item, meta, _, version, plain), position
        in zip(prepared, positions, strict=True)
    ]


def _prepare_many(items: Sequence[StreamEvent], versions: dict[UUID, int],
                  keys: dict) -> list[tuple]:
    """Give each event its id, its stream's next version (moving `versions` on) and its
    metadata, and seal its payload."""
    prepared = []
    for item in items:
        versions[item.aggregate_id] += 1
        event_id = item.event_id
        meta = {**item.metadata, "schema_version": item.event.schema_version}
        plain = item.event.payload()
        payload = sealing.seal(item.event, plain, event_id, item.aggregate_id, keys)
        prepared.append((event_id, item, meta, payload, versions[item.aggregate_id], plain))
    return prepared


def _sealed_subjects(events: Sequence[StreamEvent]) -> set[UUID]:
    """Return the subjects whose personal fields these events will seal: those of the events
    with a personal field set (as `_fetch_missing_keys` looks them up)."""
    subjects = {item.event.data_subject(item.aggregate_id) for item in events
                if not item.event.personal_fields.isdisjoint(item.event.model_fields_set)}
    subjects.discard(None)
    return subjects  # type: ignore[return-value]


def _refuse_forgotten(subjects: set[UUID]) -> None:
    """Refuse events of a subject forgotten since its key was read (before the lock).

    A forget destroys the key under the same lock, so once it is held, what it finds is final."""
    forgotten = crypto.forgotten_among(subjects)
    if forgotten is not None:
        raise RuleViolated(f"the data of {forgotten} was forgotten; nothing more can be stored",
                           code="subject_forgotten")


def _keys_for_sealing(events: Sequence[StreamEvent]) -> dict:
    """Return the live data keys of the subjects these events may seal, read in one query
    (`sealing.seal` creates the missing ones and refuses destroyed ones, one by one)."""
    subjects = {
        item.event.data_subject(item.aggregate_id) for item in events if item.event.personal_fields
    }
    subjects.discard(None)
    return {s: k for s, k in crypto.keys_for_reading(subjects).items() if k is not None}


@contextmanager
def binding_cursor() -> Iterator[Any]:
    """Yield a psycopg cursor on Django's connection (and in its transaction) that sends
    parameters apart from the SQL (PostgreSQL only); errors come out as Django's.

    Django's cursors bind client-side, parsing every statement for its placeholders and quoting
    every value in Python, and the server plans every statement anew: too slow for the hot paths.
    With this cursor a batch travels as a few array parameters, dumped in binary (`%b`
    placeholders, ~10x faster than text), and psycopg prepares a statement on the server once it
    has run a few times, so the server stops planning it. Statements still pass through the
    connection's execute wrappers (the slow-query log).
    """
    import psycopg

    # The connection object itself: each attribute read through django.db.connection (a proxy
    # to this thread's connection) costs a lookup, a dozen of them per command.
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        yield _WrappedCursor(cursor, db)


def _stale_prepared(exc: Exception) -> bool:
    """Tell whether a statement failed because it was prepared before a migration changed the
    type of a column it returns (PostgreSQL refuses to run such a plan until it is prepared
    again)."""
    return "cached plan must not change result type" in str(exc)


class _WrappedCursor:
    """A psycopg cursor whose `execute` runs through Django's execute wrappers."""

    def __init__(self, cursor: Any, db: Any) -> None:
        self.cursor = cursor
        self.db = db

    def execute(self, sql: str, params: Sequence[Any] | None = None, **options: Any) -> Any:
        def run(sql: str, params: Any, many: bool, context: dict) -> Any:
            return self.cursor.execute(sql, params, **options)

        with pipeline.logged(self.db, [(sql, params)]):
            return self._run(pipeline.wrapped(self.db, run), sql, params)

    def _run(self, executor: Callable[..., Any], sql: str, params: Any) -> Any:
        try:
            return executor(sql, params, False, {"connection": self.db, "cursor": self})
        except Exception as exc:
            if not _stale_prepared(exc) or not self.db.get_autocommit():
                # In a transaction the rollback that follows makes psycopg drop its prepared
                # statements, and the next transaction prepares them anew.
                raise
            # Outside one nothing would: forget them now and run the statement again.
            self.cursor.execute("DEALLOCATE ALL")
            return executor(sql, params, False, {"connection": self.db, "cursor": self})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


@contextmanager
def fast_cursor() -> Iterator[Any]:
    """Yield the cursor for a hot statement: a binding cursor on PostgreSQL (prepared once it
    repeats), Django's own on SQLite (in-process, where planning is cheap). Placeholders: %s."""
    if connection.vendor == "postgresql":
        with binding_cursor() as cursor:
            yield cursor
    else:
        with connection.cursor() as cursor:
            yield cursor


def _claim_many(
    cursor, streams: dict[UUID, tuple[str, int, int, UUID | None, UUID | None]]
) -> None:
    """Move every stream (aggregate type, expected, count, clinic, subject) from its expected
    version to expected + count, creating the new ones, or raise VersionConflict."""
    d = dialect()
    now = datetime.now(UTC)
    new = [(agg_id, s) for agg_id, s in streams.items() if s[1] == 0]
    moved = [(agg_id, s) for agg_id, s in streams.items() if s[1] != 0]
    if d.vendor == "postgresql":
        claimed = _claim_many_pg(new, moved, now)
    else:
        claimed = _claim_many_sqlite(cursor, new, moved, d.time_in(now))
    for agg_id, (_, expected, _, _, _) in streams.items():
        if d.uuid_in(agg_id) not in claimed:
            actual = current_version(agg_id)
            raise VersionConflict(
                f"stream {agg_id} is at version {actual}, not {expected}",
                expected=expected, actual=actual,
            )


def _claim_many_pg(new: list, moved: list, now: datetime) -> set:
    claimed: set = set()
    with binding_cursor() as cursor:
        if new:
            cursor.execute(
                "INSERT INTO streams (aggregate_id, aggregate_type, version, clinic_id, subject_id,"
                " created_at, updated_at) SELECT a, t, v, c, s, %b, %b FROM unnest(%b::uuid[],"
                " %b::text[], %b::int[], %b::uuid[], %b::uuid[]) AS x (a, t, v, c, s)"
                " ON CONFLICT (aggregate_id) DO NOTHING RETURNING aggregate_id",
                [now, now, [a for a, _ in new], [s[0] for _, s in new], [s[2] for _, s in new],
                 [s[3] for _, s in new], [s[4] for _, s in new]],
            )
            claimed.update(row[0] for row in cursor.fetchall())
        if moved:
            # Row locks as in `append`: a concurrent writer waits for our commit.
            # The ANY condition makes the planner probe the primary key for these ids; with the
            # join alone it may hash the whole table (a sequential scan per batch).
            ids = [a for a, _ in moved]
            cursor.execute(
                "UPDATE streams SET version = x.v, updated_at = %b"
                " FROM unnest(%b::uuid[], %b::int[], %b::int[]) AS x (a, e, v)"
                " WHERE streams.aggregate_id = ANY(%b::uuid[])"
                " AND streams.aggregate_id = x.a AND streams.version = x.e"
                " RETURNING streams.aggregate_id",
                [now, ids, [s[1] for _, s in moved], [s[1] + s[2] for _, s in moved], ids],
            )
            claimed.update(row[0] for row in cursor.fetchall())
    return claimed


def _claim_many_sqlite(cursor, new: list, moved: list, now: Any) -> set:
    d = dialect()
    claimed: set = set()
    for start in range(0, len(new), INSERT_CHUNK):
        chunk = new[start:start + INSERT_CHUNK]
        params: list[Any] = []
        for agg_id, (agg_type, _, count, clinic_id, subject_id) in chunk:
            params += [d.uuid_in(agg_id), agg_type, count,
                       d.uuid_in(clinic_id) if clinic_id else None,
                       d.uuid_in(subject_id) if subject_id else None, now, now]
        cursor.execute(
            "INSERT INTO streams (aggregate_id, aggregate_type, version, clinic_id, subject_id,"
            " created_at, updated_at) VALUES "
            + ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            + " ON CONFLICT (aggregate_id) DO NOTHING RETURNING aggregate_id",
            params,
        )
        claimed.update(row[0] for row in cursor.fetchall())
    for start in range(0, len(moved), INSERT_CHUNK):
        chunk = moved[start:start + INSERT_CHUNK]
        params = []
        for agg_id, (_, expected, count, _, _) in chunk:
            params += [d.uuid_in(agg_id), expected, expected + count]
        cursor.execute(
            "WITH v (aggregate_id, expected, version) AS (VALUES "
            + ", ".join(["(%s, %s, %s)"] * len(chunk))
            + ") UPDATE streams SET version = v.version, updated_at = %s FROM v"
            " WHERE streams.aggregate_id = v.aggregate_id AND streams.version = v.expected"
            " RETURNING aggregate_id",
            [*params, now],
        )
        claimed.update(row[0] for row in cursor.fetchall())
    return claimed


def _insert_rows_pg(chunks: Iterable[list[tuple]]) -> list[int]:
    """Insert event rows, a statement of array parameters per chunk, in one exchange where each
    is sent as soon as it is made (the server stores one while the next is sealed); return
    their positions in order."""
    rows: list[tuple] = []

    def statements() -> Iterator[pipeline.Statement]:
        for chunk in chunks:
            rows.extend(chunk)
            columns = list(zip(*chunk, strict=True))
            # WITH ORDINALITY ... ORDER BY: positions are drawn in the order of the list.
            yield (
                "INSERT INTO event_store (id, aggregate_id, aggregate_type, event_type, version,"
                " timestamp, metadata, event_data) SELECT i, a, t, e, v, %b, m::jsonb, d::jsonb"
                " FROM unnest(%b::uuid[], %b::uuid[], %b::text[], %b::text[], %b::int[],"
                " %b::text[], %b::text[]) WITH ORDINALITY AS x (i, a, t, e, v, m, d, n)"
                " ORDER BY n RETURNING aggregate_id, version, position",
                [chunk[0][5], list(columns[0]), list(columns[1]), list(columns[2]),
                 list(columns[3]), list(columns[4]), [orjson.dumps(m).decode() for m in columns[6]],
                 [orjson.dumps(p).decode() for p in columns[7]]],
                True,
            )

    answered = pipeline.run_many(statements(), begin=pipeline.can_begin(), streamed=True)
    by_key = {(agg_id, version): position
              for part in answered for agg_id, version, position in part}
    return [by_key[(row[1], row[4])] for row in rows]


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
            + " RETURNING aggregate_id, version, position",
            params,
        )
        # RETURNING's row order is not promised, so match positions back by stream and version.
        by_key = {(agg_id, version): position for agg_id, version, position in cursor.fetchall()}
        positions += [by_key[(d.uuid_in(row[1]), row[4])] for row in chunk]
    return positions


def load(
    aggregate_id: UUID,
    *,
    after_version: int = 0,
    to_version: int | None = None,
    as_of: datetime | None = None,
) -> list[RecordedEvent]:
    """Return a stream's events in version order, optionally bounded by version or time."""
    where, params = _stream_slice(aggregate_id, after_version, to_version, as_of)
    return decode_rows(select_events(f"SELECT {{columns}} FROM event_store WHERE {where}", params))


def _stream_slice(
    aggregate_id: UUID, after_version: int, to_version: int | None, as_of: datetime | None,
) -> tuple[str, list[Any]]:
    """Return the WHERE condition (with ORDER BY) and parameters of a stream's bounded events."""
    d = dialect()
    where = "aggregate_id = %s AND version > %s"
    params: list[Any] = [d.uuid_in(aggregate_id), after_version]
    if to_version is not None:
        where += " AND version <= %s"
        params.append(to_version)
    if as_of is not None:
        where += " AND timestamp <= %s"
        params.append(d.time_in(as_of))
    return where + " ORDER BY version", params


def _open_event(
    event_id: UUID, event_type: str, schema_version: int, data: dict[str, Any], keys: dict,
) -> tuple[DomainEvent, frozenset[str]]:
    """Open a stored payload's sealed fields, upcast and validate it into its event."""
    data, redacted = sealing.open_payload(data, event_id, keys)
    return registry.decode(event_type, schema_version, data, redacted=redacted), redacted


def load_events(
    aggregate_id: UUID, *, after_version: int = 0, to_version: int | None = None,
    as_of: datetime | None = None,
) -> list[tuple[int, DomainEvent]]:
    """Return a stream's events with their versions, as `load` bounds them, for folding.

    Folding an aggregate needs neither positions, times nor metadata, only each event's schema
    version: reading just that from the metadata and building no RecordedEvent makes a long
    load about a fifth faster.
    """
    where, params = _stream_slice(aggregate_id, after_version, to_version, as_of)
    sql = f"SELECT {fold_columns()} FROM event_store e WHERE {where}"
    with fast_cursor() as cursor:
        if dialect().vendor == "postgresql":
            cursor.execute(sql, params, binary=True)
        else:
            cursor.execute(sql, params)
        return decode_fold_rows(cursor.fetchall())


def fold_columns(alias: str = "e") -> str:
    """Return the columns `decode_fold_rows` reads, of event_store under `alias`."""
    if dialect().vendor == "postgresql":
        return (f"{alias}.id, {alias}.version, {alias}.event_type,"
                f" ({alias}.metadata->>'schema_version')::int, {alias}.event_data::text")
    return (f"{alias}.id, {alias}.version, {alias}.event_type,"
            f" json_extract({alias}.metadata, '$.schema_version'), {alias}.event_data")


def decode_fold_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[int, DomainEvent]]:
    """Turn rows of `fold_columns` into (version, event) pairs."""
    d = dialect()
    payloads = [orjson.loads(row[4]) for row in rows]
    keys = crypto.keys_for_reading(sealing.subjects(payloads))
    return [
        (version, _open_event(d.uuid_out(event_id), event_type, schema or 1, data, keys)[0])
        for (event_id, version, event_type, schema, _), data in zip(rows, payloads, strict=True)
    ]


def read_rows(after: int = 0, limit: int = 1000) -> list[tuple]:
    """Return raw rows of the global log (COLUMNS order), undecoded, for checks and tools."""
    return select_events(
        "SELECT {columns} FROM event_store WHERE position > %s ORDER BY position LIMIT %s",
        [after, limit],
    )


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
