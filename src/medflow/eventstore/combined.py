"""Send a command's read-model row writes to PostgreSQL together, in one round trip.

A command's inline projections write a row or two (the patient row, the timeline entry), each a
round trip of its own when sent alone, and each one held inside the global-order lock that the
append took. Inside `combined()`, a write handed to `send` waits; the waiting writes go to the
server as one statement of data-modifying CTEs when the scope ends, or just before any other
statement runs on the connection. So whoever reads next (a handler, a process manager, the
command itself) sees every write made before, as if each had run at once.

Two writes to the same table never travel together: the parts of one statement share a snapshot
and cannot see each other's rows, so the first is sent before the second joins.

A scope that ends its transaction (`combined(commit=True)`, a command's outermost one) sends
its last writes with COMMIT, in one round trip (`eventstore.pipeline`). A write that would run a
fallback when it touches no row cannot then wait for its count: the statement checks it and
fails instead (SQLSTATE MF001, see `missed_row`), the transaction rolls back, and the caller
runs the command again without committing early.

SQLite runs in the process, where a statement costs no round trip: there `combined()` does
nothing and `send` runs the statement at once.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import connection

from medflow.eventstore import pipeline
from medflow.eventstore.store import DeferredAppend, Pending, fast_cursor

OnMiss = Callable[[], None]


@dataclass(frozen=True, slots=True)
class _Write:
    table: str
    sql: str
    params: Sequence[Any]
    on_miss: OnMiss | None


class _Waiting:
    """The writes waiting in one `combined()` scope, in the order they were sent."""

    def __init__(self, append: DeferredAppend | None = None) -> None:
        self.writes: list[_Write] = []
        self.tables: set[str] = set()
        self.append = append

    def add(self, write: _Write) -> None:
        if write.table in self.tables:
            if self.append is not None:
                raise RuntimeError(f"two writes to {write.table} after a deferred append")
            self.flush()
        self.writes.append(_pending_filled(write))
        self.tables.add(write.table)

    def flush(self, *, commit: bool = False) -> None:
        """Send the waiting writes, then run the `on_miss` of each that touched no row; with
        `commit`, send COMMIT with them if the transaction allows it."""
        writes, self.writes, self.tables = self.writes, [], set()
        if self.append is not None:
            self._send_with_append(writes)
            return
        if not writes:
            return
        if commit and pipeline.can_commit():
            pipeline.run(*_together(writes, guard=True), commit=True)
            return
        with fast_cursor() as cursor:
            if len(writes) == 1:
                cursor.execute(writes[0].sql, writes[0].params)
                counts = [cursor.rowcount]
            else:
                cursor.execute(*_together(writes))
                counts = list(cursor.fetchone())
        # Outside the statement, so that what a fallback does is sent (and seen) in order.
        for write, count in zip(writes, counts, strict=True):
            if count == 0 and write.on_miss is not None:
                write.on_miss()

    def _send_with_append(self, writes: list[_Write]) -> None:
        """Send the deferred append, then the writes, then COMMIT: one round trip."""
        append, self.append = self.append, None
        if not pipeline.can_commit(unbegun=True):
            raise RuntimeError("a deferred append needs the outermost transaction")
        statements = [(append.sql, append.params, True)]
        if writes:
            statements.append((*_together(writes, guard=True), False))
        append.inserted = pipeline.run_many(statements, begin=pipeline.can_begin(),
                                            commit=True)[0]

    def flush_first(self, execute: Callable, sql: str, params: Any, many: bool,
                    context: dict) -> Any:
        """A connection.execute_wrapper: send the waiting writes before any other statement,
        except a rollback to a savepoint, which drops them instead."""
        if self.append is not None:
            # The writes wait for an append not sent yet: nothing may run before it.
            raise RuntimeError(f"a statement ran before a deferred append: {sql[:60]}")
        if self.writes:
            if sql.startswith("ROLLBACK TO SAVEPOINT"):
                # Creating the savepoint sent what was waiting then: every write waiting now
                # came after it, and is part of the work being undone.
                self.writes, self.tables = [], set()
            else:
                self.flush()
        return execute(sql, params, many, context)


def _pending_filled(write: _Write) -> _Write:
    """Return the write with each Pending parameter (a deferred append's position or time)
    replaced by the SQL that reads it back."""
    if not any(isinstance(p, Pending) for p in write.params):
        return write
    parts = write.sql.split("%s")
    if len(parts) != len(write.params) + 1:
        raise ValueError(f"cannot place pending values in: {write.sql}")
    sql, params = [parts[0]], []
    for param, tail in zip(write.params, parts[1:], strict=True):
        if isinstance(param, Pending):
            sql.append(param.sql)
            params.extend(param.params)
        else:
            sql.append("%s")
            params.append(param)
        sql.append(tail)
    return _Write(write.table, "".join(sql), params, write.on_miss)


def _together(writes: list[_Write], *, guard: bool = False) -> tuple[str, list[Any]]:
    """Return one statement running every write, which answers each one's row count; with
    `guard`, it fails (MF001) where a write with a fallback touched no row."""
    parts = ", ".join(f"w{i} AS ({w.sql} RETURNING 1)" for i, w in enumerate(writes))
    counts = ", ".join(
        f"medflow_expect_rows((SELECT count(*) FROM w{i}))"
        if guard and w.on_miss is not None else f"(SELECT count(*) FROM w{i})"
        for i, w in enumerate(writes))
    return f"WITH {parts} SELECT {counts}", [p for w in writes for p in w.params]


_waiting: ContextVar[_Waiting | None] = ContextVar("combined_writes", default=None)


@contextmanager
def combined(*, commit: bool = False, append: DeferredAppend | None = None) -> Iterator[None]:
    """Hold back the row writes sent inside the scope and send them together (PostgreSQL).

    With `commit`, the scope is the last work of an outermost `transaction.atomic()`: its last
    writes may travel with COMMIT (then the atomic block's own commit finds nothing to do).
    With a deferred `append` (its events' handlers are `pending_safe`), the append goes first
    in the same round trip, and no other statement may run inside the scope.
    """
    if connection.vendor != "postgresql" or _waiting.get() is not None:
        if append is not None:
            raise RuntimeError("a deferred append needs a scope of its own (PostgreSQL)")
        yield
        return
    waiting = _Waiting(append)
    token = _waiting.set(waiting)
    try:
        with connection.execute_wrapper(waiting.flush_first):
            yield
            # On an error nothing is sent: the transaction that would hold it rolls back.
            waiting.flush(commit=commit)
    finally:
        _waiting.reset(token)


def missed_row(exc: BaseException) -> bool:
    """Tell whether a database error is a guarded write's missed row (see `combined`): nothing
    was committed, and the command must run again, committing on its own."""
    return getattr(exc.__cause__, "sqlstate", None) == "MF001"


def send(table: str, sql: str, params: Sequence[Any], on_miss: OnMiss | None = None) -> None:
    """Run one single-row INSERT or UPDATE (no RETURNING) now, or with the scope's other writes;
    `on_miss` runs, afterwards and in the same transaction, if it touched no row."""
    waiting = _waiting.get()
    if waiting is not None:
        waiting.add(_Write(table, sql, params, on_miss))
        return
    alone = _Waiting()
    alone.add(_Write(table, sql, params, on_miss))
    alone.flush()


def flush() -> None:
    """Send the waiting writes now (before a statement that bypasses the execute wrappers,
    such as COPY)."""
    waiting = _waiting.get()
    if waiting is not None:
        waiting.flush()
