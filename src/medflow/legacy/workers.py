"""Run the legacy migration's steps by patient in several processes, each over its own range of
patients.

The steps after providers convert rows that each belong to one patient, and every aggregate and
read-model row such a row touches (encounter, diagnosis, order, chart, timeline, latest vitals)
belongs to that patient too. Workers given disjoint ranges of patients therefore never write the
same stream or row, and each commits its batches on its own, every batch with its rows' map
entries: a killed worker loses only its batch in flight, and a rerun resumes where each stopped.
On PostgreSQL their reading, loading and converting run side by side, and their batches' writes
take turns on the log's order lock (held from the append to the commit); SQLite's single writer
takes their whole batches in turn (correct, but no faster).

Processes, not threads: converting rows is Python work, which threads would run one at a time.
Workers are forked from the migrating process after its database connections (and pool) are
closed, so that no two processes share a socket, and report through pipes: rows done as they
commit, then their report, or the error that stopped them.
"""

import itertools
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from multiprocessing.connection import wait
from typing import Any

from django.db import connections

# (first patient id, first patient id of the next range); None: unbounded.
Range = tuple[str | None, str | None]


class WorkerFailed(RuntimeError):
    """A worker stopped before finishing its range; what the others committed stays."""


def can_fork() -> bool:
    """Tell whether worker processes can be forked here: not on Windows (no fork), nor on macOS,
    where a child forked after system libraries (libpq's Kerberos and TLS among them) have
    started threads may crash, which is why Python's default there is spawn."""
    return sys.platform != "darwin" and "fork" in multiprocessing.get_all_start_methods()


def patient_ranges(patient_ids: Iterable[str], parts: int) -> list[Range]:
    """Split the patients, given in the database's order of their ids, into at most `parts`
    ranges of about as many patients each. (Python's order of strings may differ from the
    column's collation, and ranges bounded out of order would overlap.)"""
    ids = list(patient_ids)
    parts = max(1, min(parts, len(ids)))
    bounds = [ids[len(ids) * k // parts] for k in range(1, parts)]
    edges: list[str | None] = [None, *bounds, None]
    return list(itertools.pairwise(edges))


def run(work: Callable[[int, Callable[[Any], None]], Any], parts: int,
        on_rows: Callable[[Any], None]) -> list[Any]:
    """Run `work(part, rows_done)` in `parts` forked processes; return their results by part.

    `rows_done(progress)`, called in a worker after each batch it commits, reaches
    `on_rows(progress)` here (any value a pipe can carry). Raise WorkerFailed once all
    have stopped if any failed or died.
    """
    close_connections()
    context = multiprocessing.get_context("fork")
    processes, readers = [], {}
    for part in range(parts):
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(work, part, writer), daemon=True,
                                  name=f"medflow-legacy-worker-{part}")
        process.start()
        writer.close()  # the child holds its end: EOF here once it has gone
        processes.append(process)
        readers[reader] = part
    results: dict[int, Any] = {}
    failures: dict[int, str] = {}
    waiting = set(readers)
    while waiting:
        for reader in wait(list(waiting)):
            try:
                kind, value = reader.recv()
            except EOFError:
                waiting.discard(reader)
                continue
            part = readers[reader]
            if kind == "rows":
                on_rows(value)
            elif kind == "done":
                results[part] = value
            else:
                failures[part] = value
    for part, process in enumerate(processes):
        process.join()
        if part not in results and part not in failures:
            failures[part] = f"stopped with exit code {process.exitcode}"
    if failures:
        raise WorkerFailed("; ".join(f"worker {part + 1} of {parts}: {message}"
                                     for part, message in sorted(failures.items())))
    return [results[part] for part in range(parts)]


def close_connections() -> None:
    """Close every database connection of this process, and its pool (a pool's sockets and
    threads must not be inherited by a forked child)."""
    for connection in connections.all(initialized_only=True):
        connection.close()
        close_pool = getattr(connection, "close_pool", None)
        if close_pool is not None:
            close_pool()


def _child(work: Callable, part: int, writer) -> None:
    parent = os.getppid()

    def rows_done(progress: Any) -> None:
        # A parent killed (by a signal, not an exception) takes no daemon down with it: stop
        # after the batch just committed, so that a rerun never overlaps a worker left over.
        if os.getppid() != parent:
            os._exit(1)
        writer.send(("rows", progress))

    code = 0
    try:
        result = work(part, rows_done)
        writer.send(("done", result))
    except BaseException as exc:  # reported to the parent, which raises it
        code = 1
        traceback.print_exc(file=sys.stderr)
        writer.send(("failed", "".join(traceback.format_exception_only(exc)).strip()))
    finally:
        close_connections()
        writer.close()
        sys.stdout.flush()
        sys.stderr.flush()
        # Never return into the parent's code (a test runner, a command): leave here.
        os._exit(code)
