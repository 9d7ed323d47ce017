"""Run one function in N client processes at once and gather what each measured.

Processes are spawned, not forked: each one opens its own database connections. They all set up
(connect, create their patients, warm up) first, then wait on a barrier, so that the timed loops
overlap.
"""

import multiprocessing
import queue as queue_module
from collections.abc import Callable
from typing import Any

from bench.stats import latency_summary

# Generous: a client on a 2-CPU machine may wait long on SQLite's single writer.
TIMEOUT_S = 1800


def run_clients(target: Callable[..., dict], clients: int, **kwargs: Any) -> list[dict]:
    """Start `clients` processes running `target(index, barrier, **kwargs)`; return their dicts.

    `target` must be a module-level function, must call `barrier.wait()` when its timed part is
    about to start, and must return JSON-ready data.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(clients)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(target, index, barrier, results, kwargs))
        for index in range(clients)
    ]
    for proc in procs:
        proc.start()
    gathered = []
    try:
        for _ in procs:
            gathered.append(results.get(timeout=TIMEOUT_S))
    except queue_module.Empty:
        raise RuntimeError("a client process gave no result in time") from None
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    failed = [g["error"] for g in gathered if "error" in g]
    if failed:
        raise RuntimeError(f"{len(failed)} client(s) failed; first: {failed[0]}")
    return sorted(gathered, key=lambda g: g["client"])


def _client(target, index, barrier, results, kwargs) -> None:
    try:
        out = target(index, barrier, **kwargs)
        results.put({"client": index, **out})
    except BaseException as exc:  # report it, or the parent waits for nothing
        barrier.abort()
        results.put({"client": index, "error": f"{type(exc).__name__}: {exc}"})


def summarise_clients(gathered: list[dict]) -> dict:
    """Pool every client's latencies (ns) and give the aggregate rate over the timed window.

    Each client returns `samples_ns`, `start_ns` and `end_ns` (perf_counter_ns, one clock for
    every process on Linux).
    """
    samples = [s for g in gathered for s in g["samples_ns"]]
    window_s = (max(g["end_ns"] for g in gathered) - min(g["start_ns"] for g in gathered)) / 1e9
    per_client = [latency_summary(g["samples_ns"]) for g in gathered]
    return {
        "clients": len(gathered),
        **latency_summary(samples),
        "window_s": round(window_s, 3),
        "ops_per_s": round(len(samples) / window_s, 1),
        "per_client_p50_ms": [c["p50_ms"] for c in per_client],
        "per_client_p99_ms": [c["p99_ms"] for c in per_client],
    }
