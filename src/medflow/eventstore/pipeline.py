"""Send a transaction's statements with its BEGIN and COMMIT in one round trip (PostgreSQL).

psycopg sends BEGIN on its own before a transaction's first statement, and Django's commit sends
COMMIT on its own after the last: two of a command's round trips that carry no work. Here
statements go through libpq's pipeline mode, after BEGIN or before COMMIT when asked, with one
Sync: the server runs them in order and answers them together (and, after an error, skips the
rest up to the Sync). A streamed exchange sends each statement as soon as it is made, so that
the server runs one while the client makes the next (a large append, sealed in parts).

Each statement is prepared on the server the first time it is seen on a connection (by its text
and parameter types) and executed by name afterwards, as psycopg's cursor does for hot
statements; with preparing off (MEDFLOW_DB_PREPARE=off), or in a streamed exchange inside a
transaction begun before, it goes unnamed, planned each time.
They still pass through the connection's execute wrappers (the slow-query log) and
its query log (DEBUG, tests), and their errors come out as Django's.
"""

import itertools
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import Any
from weakref import WeakKeyDictionary

from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import IsolationLevel, errors, generators, pq
from psycopg.adapt import PyFormat, Transformer

_PLACEHOLDER = re.compile(r"%([sbt])")
_FORMATS = {"s": PyFormat.AUTO, "b": PyFormat.BINARY, "t": PyFormat.TEXT}

# Server-side statement names by psycopg connection, keyed by (query, parameter types). Names
# are never reused: a statement whose plan went stale is left behind under its old name.
_prepared: "WeakKeyDictionary[Any, dict[tuple, bytes]]" = WeakKeyDictionary()
_names = itertools.count(1)


@lru_cache(maxsize=256)
def _convert(sql: str) -> tuple[bytes, tuple[PyFormat, ...]]:
    """Return the statement with $n placeholders, and each parameter's wanted format."""
    formats: list[PyFormat] = []

    def number(match: re.Match) -> str:
        formats.append(_FORMATS[match.group(1)])
        return f"${len(formats)}"

    return _PLACEHOLDER.sub(number, sql).encode(), tuple(formats)


def can_begin() -> bool:
    """Tell whether the next statement would open the transaction of a Django atomic block:
    PostgreSQL, inside `transaction.atomic()`, nothing sent yet."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or db.connection is None or db.get_autocommit():
        return False
    return db.connection.pgconn.transaction_status == pq.TransactionStatus.IDLE


def can_commit(*, unbegun: bool = False) -> bool:
    """Tell whether the running transaction may be committed with its last statement: the
    outermost atomic block of a PostgreSQL connection, in a transaction in good order (or, if
    `unbegun`, not yet begun)."""
    db = connections[DEFAULT_DB_ALIAS]
    if (db.vendor != "postgresql" or db.connection is None or db.get_autocommit()
            or db.needs_rollback or len(db.atomic_blocks) != 1 or not db.commit_on_exit
            or db.savepoint_ids):
        # Not Django's outermost block (commit_on_exit is off under manual transactions, and
        # the block is then a savepoint of the caller's transaction).
        return False
    status = db.connection.pgconn.transaction_status
    return status == pq.TransactionStatus.INTRANS or (
        unbegun and status == pq.TransactionStatus.IDLE)


def run(sql: str, params: Sequence[Any], *, begin: bool = False, commit: bool = False,
        binary: bool = False) -> list[tuple]:
    """Run one statement (placeholders %s, %b, %t) and return its rows: after BEGIN when
    `begin`, followed by COMMIT when `commit`, all in one round trip."""
    return run_many([(sql, params, binary)], begin=begin, commit=commit)[0]


Statement = tuple[str, Sequence[Any], bool]  # SQL, parameters, whether results come in binary


def run_many(statements: Iterable[Statement], *, begin: bool = False, commit: bool = False,
             streamed: bool = False) -> list[list[tuple]]:
    """Run statements in order, in one round trip (after BEGIN, before COMMIT, when asked), and
    return the rows of each; the first that fails stops the others, and its error is raised.

    With `streamed`, each statement is sent as soon as the iterable yields it, so that the server
    runs it while the client makes the next (a large append, sealed and encoded in chunks). The
    iterable must not run statements itself (they are refused with a RuntimeError)."""
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    statements = iter(statements)
    first = next(statements, None)
    if first is None:
        raise ValueError("no statement to run")
    statements = itertools.chain([first], statements)
    sent: list[Statement] = []

    def execute(sql: str, params: Any, many: bool, context: dict) -> list[list[tuple]]:
        if not streamed:
            return _send(db.connection, statements, sent, begin, commit, streamed)
        # The iterable runs while the exchange holds the connection: a statement of its own
        # would wait for it for ever (or read its answers). Refuse it instead.
        with db.execute_wrapper(_inside_exchange):
            return _send(db.connection, statements, sent, begin, commit, streamed)

    with logged(db, sent), db.wrap_database_errors:
        # The wrappers see the first statement: the others are not made yet when streamed.
        return wrapped(db, execute)(first[0], first[1], False, {"connection": db, "cursor": None})


def _inside_exchange(execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
    raise RuntimeError(f"a statement ran while a streamed exchange was open: {sql[:60]}")


def wrapped(db: Any, execute: Callable[..., Any]) -> Callable[..., Any]:
    """Return `execute` (Django's executor signature) inside the connection's execute wrappers
    (the slow-query log, held-back row writes), as Django's own cursors run statements."""
    for wrapper in reversed(db.execute_wrappers):
        execute = partial(wrapper, execute)
    return execute


@contextmanager
def logged(db: Any, statements: Sequence[Sequence[Any]]) -> Iterator[None]:
    """Log the statements run inside (SQL and parameters first in each; read at the end, so the
    list may fill meanwhile) in the connection's query log when it keeps one (DEBUG, a test
    capturing queries), with their values written in, as Django's cursors do. (Django logs
    BEGIN and COMMIT itself, where its atomic block starts and ends.)"""
    started = time.monotonic()
    try:
        yield
    finally:
        if db.queries_logged:
            import psycopg

            seconds = f"{time.monotonic() - started:.3f}"
            for sql, params, *_ in statements:
                text = psycopg.ClientCursor(db.connection).mogrify(
                    _PLACEHOLDER.sub("%s", sql), params)
                db.queries_log.append({"sql": text, "time": seconds})


def statement_lost(exc: BaseException) -> bool:
    """Tell whether a database error says a statement prepared here is gone from the server
    (psycopg deallocates every prepared statement after a rollback); it will be prepared anew."""
    return getattr(exc.__cause__, "sqlstate", None) == "26000"


def _send(conn: Any, statements: Iterator[Statement], sent: list[Statement], begin: bool,
          commit: bool, streamed: bool) -> list[list[tuple]]:
    try:
        return _send_once(conn, statements, sent, begin, commit, streamed)
    except errors.InvalidSqlStatementName:
        if not begin:
            raise
    # Only BEGIN ran before the lost statement: end that transaction and start again, with the
    # statements made already, then any not made yet.
    conn.rollback()
    again = itertools.chain(list(sent), statements)
    sent.clear()
    return _send_once(conn, again, sent, begin, commit, streamed)


def _send_once(conn: Any, statements: Iterator[Statement], sent: list[Statement], begin: bool,
               commit: bool, streamed: bool) -> list[list[tuple]]:
    with conn.lock:
        pgconn = conn.pgconn
        # A statement found gone (psycopg deallocates them all after a rollback) is prepared
        # again by running anew from BEGIN (see _send). Inside a transaction begun before,
        # only the caller could run it anew: a command does (see `statement_lost`); a stream
        # has no one to, so its statements go unnamed.
        named = conn.prepare_threshold is not None and (begin or not streamed)
        queue = _Queue(conn, _prepared.setdefault(conn, {}) if named else None)
        if begin:
            queue.append(partial(pgconn.send_query_params, _begin_command(conn), None))
        loaders = []
        fetched: list[Any] = []
        pgconn.enter_pipeline_mode()
        try:
            try:
                for statement in statements:
                    sent.append(statement)
                    loaders.append(queue.statement(*statement))
                    if streamed:
                        # Send it now (reading what answers have come): the server runs it
                        # while the next is made.
                        fetched += _communicate(conn, pgconn, queue)
                        if any(r.status == pq.ExecStatus.FATAL_ERROR for r in fetched):
                            break  # the server skips the rest up to the Sync: make no more
            except BaseException:
                # Making or queuing a statement failed: send nothing more of it, end the
                # exchange (what was sent rolls back with the caller's transaction), and let
                # the error through.
                queue.clear()
                queue.append(pgconn.pipeline_sync)
                _drain(conn, pgconn, queue)
                raise
            if commit:
                queue.append(partial(pgconn.send_query_params, b"COMMIT", None))
            queue.append(pgconn.pipeline_sync)
            fetched += _drain(conn, pgconn, queue)
        except BaseException:
            # Let the first error through. A connection left in pipeline mode (results still
            # to come, after an interrupt) is closed, never used again half-way.
            try:
                pgconn.exit_pipeline_mode()
            except errors.OperationalError:
                pgconn.finish()
            raise
        pgconn.exit_pipeline_mode()
        results = [r for r in fetched if r.status != pq.ExecStatus.PIPELINE_SYNC]
        queue.remember_prepared(results)
        error = next((r for r in results if r.status == pq.ExecStatus.FATAL_ERROR), None)
        if error is not None:
            state = error.error_field(pq.DiagnosticField.SQLSTATE)
            if state in (b"26000", b"0A000"):
                # Gone with a DEALLOCATE ALL, or "cached plan must not change result type":
                # prepare every one anew.
                queue.names.clear()
            raise errors.error_from_result(error, encoding=conn.info.encoding)
        rows: list[list[tuple]] = []
        for tx, index in loaders:
            result = results[index]
            if result.status != pq.ExecStatus.TUPLES_OK:
                rows.append([])
                continue
            tx.set_pgresult(result)
            rows.append(tx.load_rows(0, result.ntuples, tuple))
        return rows


class _Queue(deque):
    """An exchange's commands waiting to be sent, and how many were queued in all (each answers
    with one result, but the Sync's, which is left out)."""

    def __init__(self, conn: Any, names: dict[tuple, bytes] | None) -> None:
        super().__init__()
        self.conn = conn
        # The connection's prepared statements by (query, parameter types); None: unnamed.
        self.names = names if names is not None else {}
        self.named = names is not None
        # Those this exchange prepares: used again within it, kept once their PREPARE succeeded.
        self.preparing: dict[tuple, tuple[bytes, int]] = {}
        self.queued = 0

    def append(self, command: Any) -> None:
        self.queued += 1
        super().append(command)

    def statement(self, sql: str, params: Sequence[Any], binary: bool) -> tuple[Any, int]:
        """Queue a statement (placeholders %s, %b, %t), prepared by name first when it is new;
        return what loads its rows, and the index of its result."""
        pgconn = self.conn.pgconn
        query, wanted = _convert(sql)
        tx = Transformer.from_context(self.conn)
        values = tx.dump_sequence(params, wanted)
        types, formats = tx.types or (), tx.formats
        result_format = pq.Format.BINARY if binary else pq.Format.TEXT
        if not self.named:
            # The unnamed statement, planned each time: preparing is off (MEDFLOW_DB_PREPARE=off,
            # behind a pooler that shares server sessions), or a name found gone could not be
            # prepared again in place.
            self.append(partial(pgconn.send_query_params, query, values, param_types=types,
                                param_formats=formats, result_format=result_format))
            return tx, self.queued - 1
        key = (query, types)
        name = self.names.get(key) or self.preparing.get(key, (None, 0))[0]
        if name is None:
            name = f"medflow_pipelined_{os.getpid()}_{next(_names)}".encode()
            self.append(partial(pgconn.send_prepare, name, query, param_types=types))
            self.preparing[key] = (name, self.queued - 1)
        self.append(partial(pgconn.send_query_prepared, name, values, param_formats=formats,
                            result_format=result_format))
        return tx, self.queued - 1

    def remember_prepared(self, results: list[Any]) -> None:
        """Keep the names whose PREPARE succeeded, for the connection's next exchanges."""
        for key, (name, index) in self.preparing.items():
            if results[index].status == pq.ExecStatus.COMMAND_OK:
                self.names[key] = name


def _communicate(conn: Any, pgconn: Any, commands: deque) -> list[Any]:
    """Send the queued commands (in pipeline mode), and return the results already answered."""
    return _flat(conn.wait(generators.pipeline_communicate(pgconn, commands)))


def _drain(conn: Any, pgconn: Any, commands: deque) -> list[Any]:
    """Send the queued commands, the last a Sync, and return every result up to the Sync's."""
    fetched = _communicate(conn, pgconn, commands)
    while not fetched or fetched[-1].status != pq.ExecStatus.PIPELINE_SYNC:
        fetched += conn.wait(generators.fetch_many(pgconn))
    return fetched


def _flat(batches: list[list[Any]]) -> list[Any]:
    return [r for batch in batches for r in batch]


def _begin_command(conn: Any) -> bytes:
    """Return the BEGIN psycopg would send, with the connection's transaction settings."""
    parts = [b"BEGIN"]
    if conn.isolation_level is not None:
        level = IsolationLevel(conn.isolation_level).name.replace("_", " ")
        parts += [b"ISOLATION LEVEL", level.encode()]
    if conn.read_only is not None:
        parts.append(b"READ ONLY" if conn.read_only else b"READ WRITE")
    if conn.deferrable is not None:
        parts.append(b"DEFERRABLE" if conn.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)
