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
from django.db import IntegrityError, connection, transaction

from medflow.context import Context
from medflow.errors import NotFound, VersionConflict
from medflow.eventstore import combined, snapshots, store
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


def _cache_after_commit(aggregate: Aggregate) -> None:
    key = _cache_key(type(aggregate), aggregate.id)
    entry = {"version": aggregate.version, "state_version": aggregate.state_version,
             "state": aggregate.snapshot_state()}
    # Only committed state goes into the cache; a rolled-back command leaves it alone.
    transaction.on_commit(lambda: cache.set(key, entry))


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
    try:
        with transaction.atomic():
            head = store.StreamHead(0) if fresh else store.open_stream(aggregate_id)
            if head.version and not _may_write(ctx, head.clinic_id):
                # Another clinic's record answers "not found", before any version is compared,
                # so that neither a 409 nor a 422 reveals that it exists.
                raise NotFound(f"no {cls.aggregate_type} {aggregate_id}", field="id")
            aggregate = load_current(cls, aggregate_id, head.version)
            if create and aggregate.exists:
                raise VersionConflict(
                    f"{cls.aggregate_type} {aggregate_id} already exists",
                    expected=0, actual=aggregate.version,
                )
            if not create and not aggregate.exists:
                raise NotFound(f"no {cls.aggregate_type} {aggregate_id}", field="id")
            if expected_version is not None and expected_version != aggregate.version:
                raise VersionConflict(
                    f"{cls.aggregate_type} {aggregate_id} is at version {aggregate.version},"
                    f" not {expected_version}",
                    expected=expected_version, actual=aggregate.version,
                )
            start = aggregate.version
            decide(aggregate)
            recorded = store.append(
                aggregate_id, cls.aggregate_type, aggregate.pending, start,
                ctx.metadata(command) | ({"command_id": str(command_id)} if command_id else {}),
                clinic_id=clinic_id, keys=head.keys,
            )
            aggregate.pending.clear()
            version = recorded[-1].version if recorded else start
            token = _stored.set((aggregate_id, version, aggregate))
            # The read models' row writes (and whatever follows) reach the server together.
            with combined.combined():
                try:
                    inline.dispatch(recorded)
                finally:
                    _stored.reset(token)
                if recorded:
                    aggregate.version = version
                    _cache_after_commit(aggregate)
                _maybe_snapshot(aggregate, start, version)
                result = CommandResult(aggregate_id, version, tuple(recorded))
                if command_id is not None:
                    _remember(command_id, result)
    except IntegrityError:
        # A retry racing the first attempt of the same command: the first one won.
        if command_id is not None and (previous := _previous_result(command_id)) is not None:
            return previous
        raise
    return result


def _may_write(ctx: Context, clinic_id: UUID | None) -> bool:
    return ctx.role == "system" or clinic_id is None or clinic_id in ctx.clinic_ids


def _maybe_snapshot(aggregate: Aggregate, start: int, version: int) -> None:
    every = snapshots.snapshot_every(aggregate.aggregate_type)
    if every and version // every > start // every:
        snapshots.save(
            aggregate.id, aggregate.aggregate_type, version, aggregate.state_version,
            aggregate.snapshot_state(),
        )
