"""Run a command against an aggregate in one transaction: the application services' engine.

Load (snapshot + newer events), check the caller's version, let the domain decide, append with
the expected version, update inline read models, snapshot when due, commit.
"""

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

import orjson
from cryptography.exceptions import InvalidTag
from django.db import DatabaseError, IntegrityError, connection, transaction

from medflow.context import Context
from medflow.errors import MedflowError, NotFound, VersionConflict
from medflow.eventstore import combined, crypto, pipeline, snapshots, store
from medflow.eventstore.aggregate import Aggregate
from medflow.eventstore.backends import dialect
from medflow.eventstore.cache import cache
from medflow.eventstore.handlers import inline

A = TypeVar("A", bound=Aggregate)

# The aggregate the running command has just stored, with its stream and new version: an inline
# projection whose row mirrors the aggregate's state may take it instead of reading its row back.
_stored: ContextVar[tuple[UUID, int, Aggregate] | None] = ContextVar("stored", default=None)


def aggregate_after(recorded: store.RecordedEvent) -> Aggregate | None:
    """Return the aggregate as the running command left it, when `recorded` is the last event
    that command stored for it; else None (a replay, a rebuild, or an earlier event)."""
    stored = _stored.get()
    if stored is None or stored[0] != recorded.aggregate_id or stored[1] != recorded.version:
        return None
    return stored[2]


@dataclass(frozen=True)
class CommandResult:
    """What a command returns: the aggregate, its new version, and the events it recorded."""

    aggregate_id: UUID
    version: int
    events: tuple[store.RecordedEvent, ...] = ()
    replayed: bool = False


def cache_key(aggregate_type: str, aggregate_id: UUID) -> str:
    """Return the cache key of an aggregate's state."""
    return f"agg:{aggregate_type}:{aggregate_id}"


def _cache_key(cls: type[Aggregate], aggregate_id: UUID) -> str:
    return cache_key(cls.aggregate_type, aggregate_id)


def _fold(aggregate: A, to_version: int | None = None, as_of: datetime | None = None) -> A:
    events = store.load_events(
        aggregate.id, after_version=aggregate.version, to_version=to_version, as_of=as_of
    )
    return _apply(aggregate, events)


def _apply(aggregate: A, events: list[tuple[int, Any]]) -> A:
    for version, event in events:
        aggregate.when(event)
        aggregate.version = version
    return aggregate


def load_aggregate(
    cls: type[A], aggregate_id: UUID, *, to_version: int | None = None,
    as_of: datetime | None = None,
) -> A:
    """Rebuild an aggregate from its latest usable snapshot and the events after it, as of a
    version or a time when asked."""
    if as_of is not None:
        snap = snapshots.latest(aggregate_id, cls.state_version, to_version, as_of)
        aggregate = (cls(aggregate_id) if snap is None
                     else cls.from_snapshot(aggregate_id, snap.version, snap.state))
        return _fold(aggregate, to_version, as_of)
    snap, events = snapshots.latest_with_events(aggregate_id, cls.state_version, to_version)
    aggregate = (cls(aggregate_id) if snap is None
                 else cls.from_snapshot(aggregate_id, snap.version, snap.state))
    return _apply(aggregate, events)


def load_current(cls: type[A], aggregate_id: UUID, current: int | None = None) -> A:
    """Load an aggregate at its latest version, from the cache when it holds a usable state.

    The cached state is only a starting point: the stream's version is read from the database
    (or given as `current`) and newer events are folded in, so a stale entry is never served.
    """
    if current is None:
        current = store.current_version(aggregate_id)
    if current == 0:
        return cls(aggregate_id)
    cached = cache.get(_cache_key(cls, aggregate_id))
    usable = cached is not None and cached.get("state_version") == cls.state_version
    if usable and cached["version"] <= current:
        aggregate = cls.from_snapshot(aggregate_id, cached["version"], cached["state"])
        return _fold(aggregate) if aggregate.version < current else aggregate
    return load_aggregate(cls, aggregate_id)


def _cache_after_commit(aggregate: Aggregate, head: store.StreamHead) -> None:
    key = _cache_key(type(aggregate), aggregate.id)
    entry = {"version": aggregate.version, "state_version": aggregate.state_version,
             "state": aggregate.snapshot_state()}
    if head.version:
        # The stream's clinic and its subject's key as stored (wrapped by the master key, never
        # in clear), so that the next command can presume the head instead of reading it.
        row = head.key_row
        entry["head"] = [str(head.clinic_id) if head.clinic_id else None,
                         [str(row[0]), row[1], row[2]] if row else None]
    # Only committed state goes into the cache; a rolled-back command leaves it alone.
    transaction.on_commit(lambda: cache.set(key, entry))


def _presumed(
    cls: type[A], aggregate_id: UUID, expected_version: int | None,
) -> tuple[store.StreamHead, A] | None:
    """Return the stream head and the aggregate as the cache last saw them, read without a
    round trip to the database (PostgreSQL), or None when the cache holds no usable entry
    (none, another state version, no head, or not the version the caller expects).

    Nothing is taken on trust: the append checks the version and the key in its statement.
    """
    if connection.vendor != "postgresql":
        return None
    cached = cache.get(_cache_key(cls, aggregate_id))
    if (cached is None or cached.get("state_version") != cls.state_version
            or "head" not in cached or expected_version not in (None, cached["version"])):
        return None
    clinic, row = cached["head"]
    keys, key_row = {}, None
    if row is not None:
        subject = UUID(row[0])
        try:
            keys[subject] = crypto.data_key(subject, row[1], row[2])
        except (RuntimeError, InvalidTag):
            return None  # wrapped by a master key no longer configured: read the stored one
        key_row = (subject, row[1], row[2])
    head = store.StreamHead(cached["version"], UUID(clinic) if clinic else None, keys, key_row,
                            presumed=True)
    return head, cls.from_snapshot(aggregate_id, cached["version"], cached["state"])


def _previous_result(command_id: UUID) -> CommandResult | None:
    d = dialect()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT result FROM processed_commands WHERE command_id = %s", [d.uuid_in(command_id)]
        )
        row = cursor.fetchone()
    if row is None:
        return None
    result = orjson.loads(row[0])
    return CommandResult(UUID(result["aggregate_id"]), result["version"], replayed=True)


def _remember(command_id: UUID, result: CommandResult) -> None:
    d = dialect()
    payload = {"aggregate_id": str(result.aggregate_id), "version": result.version}
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO processed_commands (command_id, aggregate_id, result, created_at)"
            f" VALUES (%s, %s, {d.json_param}, CURRENT_TIMESTAMP)",
            [d.uuid_in(command_id), d.uuid_in(result.aggregate_id), orjson.dumps(payload).decode()],
        )


def execute(
    ctx: Context,
    cls: type[A],
    aggregate_id: UUID | None,
    decide: Callable[[A], None],
    *,
    command: str,
    expected_version: int | None = None,
    create: bool = False,
    clinic_id: UUID | None = None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Run `decide` on the aggregate and store what it records, all in one transaction.

    `create` asks for a new stream; otherwise the aggregate must exist. With `create` and no
    `aggregate_id`, the aggregate gets a new random id, and no stream is looked up (none can
    exist). `expected_version` is the version the caller saw (If-Match); a mismatch raises
    VersionConflict and writes nothing. A `command_id` seen before returns the first result
    without running anything.
    """
    fresh = aggregate_id is None
    if fresh:
        if not create:
            raise ValueError("an aggregate_id is needed unless the command creates the stream")
        aggregate_id = uuid4()
    if command_id is not None and (previous := _previous_result(command_id)) is not None:
        return previous
    # The command's transaction is the outermost one (autocommit on, no atomic block around):
    # its last writes may carry the COMMIT.
    early_commit = not connection.in_atomic_block and connection.get_autocommit()
    for attempt in range(3):
        try:
            return _run(ctx, cls, aggregate_id, decide, command, expected_version, create,
                        clinic_id, command_id, fresh, early_commit)
        except DatabaseError as exc:
            # Nothing was committed in either case: run the command again (at most twice: a
            # lost statement, then a missed row).
            retry = combined.missed_row(exc) or pipeline.statement_lost(exc)
            if not early_commit or not retry or attempt == 2:
                raise
            # A read-model row was not where the early commit needed it: commit on our own,
            # so that the row's fallback can run. A lost statement is prepared anew.
            early_commit = not combined.missed_row(exc)
    raise AssertionError("unreachable")


def _run(
    ctx: Context, cls: type[A], aggregate_id: UUID, decide: Callable[[A], None], command: str,
    expected_version: int | None, create: bool, clinic_id: UUID | None,
    command_id: UUID | None, fresh: bool, early_commit: bool,
) -> CommandResult:
    try:
        with transaction.atomic():
            attempt = None if fresh else _presumed(cls, aggregate_id, expected_version)
            recorded, deferred = None, None
            if attempt is not None:
                head, aggregate = attempt
                try:
                    _check_and_decide(ctx, cls, aggregate_id, head, aggregate, decide,
                                      create=create, expected_version=expected_version)
                except MedflowError:
                    # Refused on a state that may be stale: decide again on the stored one.
                    pass
                else:
                    # Nothing recorded proves nothing either: "no change" may hold only for
                    # the cached state.
                    if aggregate.pending:
                        recorded, deferred = _store(ctx, cls, aggregate, head, command,
                                                    clinic_id, command_id, early_commit)
            if recorded is None:
                head = store.StreamHead(0) if fresh else store.open_stream(aggregate_id)
                _check_access(ctx, cls, aggregate_id, head)
                aggregate = load_current(cls, aggregate_id, head.version)
                _check_and_decide(ctx, cls, aggregate_id, head, aggregate, decide,
                                  create=create, expected_version=expected_version)
                recorded, deferred = _store(ctx, cls, aggregate, head, command, clinic_id,
                                            command_id, early_commit)
            start = aggregate.version
            aggregate.pending.clear()
            version = recorded[-1].version if recorded else start
            token = _stored.set((aggregate_id, version, aggregate))
            # The read models' row writes (and whatever follows) reach the server together;
            # a deferred append goes first, in the same round trip.
            with combined.combined(commit=early_commit, append=deferred):
                try:
                    inline.dispatch(recorded)
                finally:
                    _stored.reset(token)
                if recorded:
                    aggregate.version = version
                    _cache_after_commit(aggregate, head)
                _maybe_snapshot(aggregate, start, version)
                if deferred is None:
                    result = CommandResult(aggregate_id, version, tuple(recorded))
                    if command_id is not None:
                        _remember(command_id, result)
            if deferred is not None:
                result = CommandResult(aggregate_id, version, tuple(deferred.recorded()))
    except IntegrityError:
        # A retry racing the first attempt of the same command: the first one won.
        if command_id is not None and (previous := _previous_result(command_id)) is not None:
            return previous
        raise
    return result


def _check_access(ctx: Context, cls: type[Aggregate], aggregate_id: UUID,
                  head: store.StreamHead) -> None:
    if head.version and not _may_write(ctx, head.clinic_id):
        # Another clinic's record answers "not found", before any version is compared, so
        # that neither a 409 nor a 422 reveals that it exists.
        raise NotFound(f"no {cls.aggregate_type} {aggregate_id}", field="id")


def check_existence(cls: type[Aggregate], aggregate_id: UUID, aggregate: Aggregate, *,
                    create: bool) -> None:
    """Refuse a command creating a stream that exists, or changing one that does not."""
    if create and aggregate.exists:
        raise VersionConflict(
            f"{cls.aggregate_type} {aggregate_id} already exists",
            expected=0, actual=aggregate.version,
        )
    if not create and not aggregate.exists:
        raise NotFound(f"no {cls.aggregate_type} {aggregate_id}", field="id")


def _check_and_decide(
    ctx: Context, cls: type[A], aggregate_id: UUID, head: store.StreamHead, aggregate: A,
    decide: Callable[[A], None], *, create: bool, expected_version: int | None,
) -> None:
    """Refuse the command if the stream's state forbids it, else let the domain decide."""
    if head.presumed:
        _check_access(ctx, cls, aggregate_id, head)
    check_existence(cls, aggregate_id, aggregate, create=create)
    if expected_version is not None and expected_version != aggregate.version:
        raise VersionConflict(
            f"{cls.aggregate_type} {aggregate_id} is at version {aggregate.version},"
            f" not {expected_version}",
            expected=expected_version, actual=aggregate.version,
        )
    decide(aggregate)


def _append(
    ctx: Context, cls: type[Aggregate], aggregate: Aggregate, head: store.StreamHead,
    command: str, clinic_id: UUID | None, command_id: UUID | None,
) -> list[store.RecordedEvent] | None:
    """Store what the aggregate recorded; None if its head was presumed and was not the
    stream's (then nothing is written)."""
    return store.append(
        aggregate.id, cls.aggregate_type, aggregate.pending, aggregate.version,
        ctx.metadata(command) | ({"command_id": str(command_id)} if command_id else {}),
        clinic_id=clinic_id, keys=head.keys, presumed=head if head.presumed else None,
    )


def _store(
    ctx: Context, cls: type[Aggregate], aggregate: Aggregate, head: store.StreamHead,
    command: str, clinic_id: UUID | None, command_id: UUID | None, early_commit: bool,
) -> tuple[list[store.RecordedEvent] | None, store.DeferredAppend | None]:
    """Append what the aggregate recorded, or defer the append to the round trip that carries
    the read-model rows and COMMIT; return the events (Pending position and time, if deferred)
    and the deferred append."""
    if early_commit and _may_defer(aggregate, command_id):
        deferred = store.append_deferred(
            aggregate.id, cls.aggregate_type, list(aggregate.pending), aggregate.version,
            ctx.metadata(command), clinic_id=clinic_id, keys=head.keys,
            presumed=head if head.presumed else None,
        )
        if deferred is not None:
            return deferred.pending, deferred
    return _append(ctx, cls, aggregate, head, command, clinic_id, command_id), None


def _may_defer(aggregate: Aggregate, command_id: UUID | None) -> bool:
    """Tell whether the command can send its append with its last round trip: one event whose
    handlers all take pending values, no statement due after the handlers (no snapshot, no
    command id to remember), PostgreSQL."""
    if connection.vendor != "postgresql" or command_id is not None:
        return False
    if len(aggregate.pending) != 1 or isinstance(aggregate.pending[0], store.NewEvent):
        return False
    every = snapshots.snapshot_every(aggregate.aggregate_type)
    if every and (aggregate.version + 1) // every > aggregate.version // every:
        return False
    return inline.takes_pending(aggregate.pending[0].event_type)


def _may_write(ctx: Context, clinic_id: UUID | None) -> bool:
    return ctx.role == "system" or clinic_id is None or clinic_id in ctx.clinic_ids


def _maybe_snapshot(aggregate: Aggregate, start: int, version: int) -> None:
    every = snapshots.snapshot_every(aggregate.aggregate_type)
    if every and version // every > start // every:
        snapshots.save(
            aggregate.id, aggregate.aggregate_type, version, aggregate.state_version,
            aggregate.snapshot_state(),
        )
