"""Run many commands in one unit of work: aggregates stay in memory, events are stored at once.

For bulk writers (the legacy migration): a command runs the domain exactly as
`commands.execute` does (load, check create/exists and clinic scope, decide, take the recorded
events), but against an identity map, so a later command in the batch sees what an earlier one
recorded. `commit` then appends every stream's new events with one multi-stream append (expected
versions checked), runs the inline handlers once over the whole list, and takes the snapshots
that are due, all in the caller's transaction. Staged events carry their ids before they are
stored (`staged[i].event_id`), so that a caller can write rows naming them first.
"""

from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from uuid import UUID

import orjson
from django.db import transaction

from medflow.context import Context
from medflow.errors import NotFound
from medflow.eventstore import snapshots, store
from medflow.eventstore.aggregate import Aggregate
from medflow.eventstore.backends import dialect
from medflow.eventstore.commands import check_existence
from medflow.eventstore.handlers import inline

A = TypeVar("A", bound=Aggregate)

# Ids a single `IN (...)` carries; keeps the parameter count under SQLite's limit.
CHUNK = 500


class UnitOfWork:
    """An identity map of aggregates and the events their commands recorded, not yet stored."""

    def __init__(self) -> None:
        self._aggregates: dict[UUID, Aggregate] = {}
        # Stream id -> (version when loaded, clinic of the stored stream or None).
        self._streams: dict[UUID, tuple[int, UUID | None]] = {}
        self._new_clinics: dict[UUID, UUID | None] = {}
        self.staged: list[store.StreamEvent] = []
        # Set when a refused command had already changed an aggregate: the map is no longer
        # what the stored events say, and the caller must start the batch over.
        self.spoiled = False

    # Loading ----------------------------------------------------------------------------------

    def preload(self, cls: type[Aggregate], aggregate_ids: Iterable[UUID]) -> None:
        """Load these aggregates (those not in the map yet) with a few queries for all of them."""
        wanted = list(dict.fromkeys(i for i in aggregate_ids if i not in self._aggregates))
        for start in range(0, len(wanted), CHUNK):
            self._load_many(cls, wanted[start:start + CHUNK])

    def get(self, cls: type[A], aggregate_id: UUID) -> A:
        """Return the aggregate from the map, loading it first if needed."""
        if aggregate_id not in self._aggregates:
            self._load_many(cls, [aggregate_id])
        aggregate = self._aggregates[aggregate_id]
        if not isinstance(aggregate, cls):
            raise NotFound(f"no {cls.aggregate_type} {aggregate_id}", field="id")
        return aggregate

    def _load_many(self, cls: type[Aggregate], ids: list[UUID]) -> None:
        d = dialect()
        # Parameters bound apart on PostgreSQL: the id arrays travel as arrays, and the statements
        # (the same three for every batch) are prepared once.
        with store.fast_cursor() as cursor:
            cursor.execute(
                f"SELECT aggregate_id, version, clinic_id FROM streams WHERE {_among(ids)}",
                _ids_param(ids),
            )
            streams = {d.uuid_out(a): (v, d.uuid_out(c) if c else None)
                       for a, v, c in cursor.fetchall()}
            existing = [i for i in ids if i in streams]
            snaps = _latest_snapshots(cursor, cls, existing)
        aggregates: dict[UUID, Aggregate] = {}
        for aggregate_id in ids:
            snap = snaps.get(aggregate_id)
            if snap is not None:
                aggregates[aggregate_id] = cls.from_snapshot(aggregate_id, snap[0], snap[1])
            else:
                aggregates[aggregate_id] = cls(aggregate_id)
            self._streams[aggregate_id] = streams.get(aggregate_id, (0, None))
        behind = [i for i in existing if aggregates[i].version < streams[i][0]]
        for recorded in _events_after(behind, {i: aggregates[i].version for i in behind}):
            aggregate = aggregates[recorded.aggregate_id]
            aggregate.when(recorded.event)
            aggregate.version = recorded.version
        self._aggregates.update(aggregates)

    # Commands ---------------------------------------------------------------------------------

    def execute(
        self, ctx: Context, cls: type[A], aggregate_id: UUID, decide: Callable[[A], None], *,
        command: str, create: bool = False, clinic_id: UUID | None = None,
    ) -> A:
        """Run `decide` on the aggregate and stage what it records (see `commands.execute`).

        Returns the aggregate; a refusal leaves nothing staged, and marks the unit spoiled
        when the aggregate had changed before the refusal.
        """
        aggregate = self.get(cls, aggregate_id)
        stream_clinic = self._streams[aggregate_id][1]
        if (self._streams[aggregate_id][0] and ctx.role != "system"
                and stream_clinic is not None and stream_clinic not in ctx.clinic_ids):
            raise NotFound(f"no {cls.aggregate_type} {aggregate_id}", field="id")
        check_existence(cls, aggregate_id, aggregate, create=create)
        try:
            decide(aggregate)
        except Exception:
            if aggregate.pending:
                self.spoiled = True
                aggregate.pending.clear()
            raise
        if aggregate.pending:
            metadata = ctx.metadata(command)
            self.staged += [store.StreamEvent(aggregate_id, cls.aggregate_type, event, metadata)
                            for event in aggregate.pending]
            if aggregate.version == 0 and aggregate_id not in self._new_clinics:
                self._new_clinics[aggregate_id] = clinic_id
            aggregate.version += len(aggregate.pending)
            aggregate.pending.clear()
        return aggregate

    # Storing ----------------------------------------------------------------------------------

    def commit(self) -> list[store.RecordedEvent]:
        """Store the staged events, run the inline handlers over them, take due snapshots."""
        if self.spoiled:
            raise RuntimeError("a refused command left this unit of work inconsistent")
        if not self.staged:
            return []
        touched = {item.aggregate_id for item in self.staged}
        with transaction.atomic(savepoint=False):
            recorded = store.append_batch(
                self.staged, {i: self._streams[i][0] for i in touched},
                clinic_ids=self._new_clinics,
            )
            inline.dispatch(recorded)
            # After the append, as `commands.execute` does: a snapshot row written before the
            # log's order lock could wait on a command that holds the lock and writes the
            # same snapshot (a deadlock).
            for aggregate_id in touched:
                aggregate = self._aggregates[aggregate_id]
                start = self._streams[aggregate_id][0]
                every = snapshots.snapshot_every(aggregate.aggregate_type)
                if every and aggregate.version // every > start // every:
                    snapshots.save(
                        aggregate_id, aggregate.aggregate_type, aggregate.version,
                        aggregate.state_version, aggregate.snapshot_state(),
                    )
        # Stored: the map now starts from here (the unit may go on with another batch).
        for aggregate_id in touched:
            self._streams[aggregate_id] = (self._aggregates[aggregate_id].version,
                                           self._streams[aggregate_id][1]
                                           or self._new_clinics.get(aggregate_id))
        self._new_clinics.clear()
        self.staged = []
        return recorded


def _latest_snapshots(cursor, cls: type[Aggregate], ids: list[UUID]) -> dict[UUID, tuple]:
    """Return each aggregate's newest snapshot of the current state version: (version, state)."""
    if not ids or not snapshots.snapshot_every(cls.aggregate_type):
        return {}
    d = dialect()
    cursor.execute(
        "SELECT aggregate_id, version, state FROM snapshots WHERE schema_version = %s"
        f" AND {_among(ids)} ORDER BY version",
        [cls.state_version, *_ids_param(ids)],
    )
    # Ordered by version: the newest of each aggregate is written last.
    return {d.uuid_out(a): (v, orjson.loads(s)) for a, v, s in cursor.fetchall()}


def _events_after(ids: list[UUID], after: dict[UUID, int]) -> list[store.RecordedEvent]:
    """Return the events of these streams after the given versions, by stream and version."""
    if not ids:
        return []
    d = dialect()
    with store.fast_cursor() as cursor:
        if d.vendor == "postgresql":
            # One index range scan per stream: as a plain join the planner walks the whole
            # (aggregate_id, version) index or hashes the whole table, a cost that grows with
            # the log (40-50 ms for 500 ids among 200,000 events). OFFSET 0 keeps the LATERAL
            # subquery from being flattened into such a join.
            cursor.execute(
                f"SELECT {', '.join('e.' + c.strip() for c in store.COLUMNS.split(','))}"
                " FROM unnest(%s::uuid[], %s::int[]) WITH ORDINALITY AS x (a, v, n)"
                " CROSS JOIN LATERAL (SELECT * FROM event_store WHERE aggregate_id = x.a"
                " AND version > x.v OFFSET 0) e ORDER BY x.n, e.version",
                [ids, [after[i] for i in ids]],
            )
        else:
            where = " OR ".join(["(aggregate_id = %s AND version > %s)"] * len(ids))
            params: list[Any] = []
            for aggregate_id in ids:
                params += [d.uuid_in(aggregate_id), after[aggregate_id]]
            cursor.execute(
                f"SELECT {store.COLUMNS} FROM event_store WHERE {where}"
                " ORDER BY aggregate_id, version",
                params,
            )
        return store.decode_rows(cursor.fetchall())


def _among(ids: list[UUID]) -> str:
    """Return the condition "aggregate_id is one of `ids`" (see `_ids_param`)."""
    if dialect().vendor == "postgresql":
        # One array parameter: a statement with thousands of placeholders parses slowly.
        return "aggregate_id = ANY(%s::uuid[])"
    return f"aggregate_id IN ({', '.join(['%s'] * len(ids))})"


def _ids_param(ids: list[UUID]) -> list[Any]:
    d = dialect()
    return [list(ids)] if d.vendor == "postgresql" else [d.uuid_in(i) for i in ids]
