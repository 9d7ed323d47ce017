"""Timing and summary statistics."""

import statistics
import time
from collections.abc import Sequence


def now_ns() -> int:
    """Return a monotonic clock reading in nanoseconds."""
    return time.perf_counter_ns()


def latency_summary(samples_ns: Sequence[int]) -> dict:
    """Summarise latencies: count, p50/p95/p99, mean, min and max, in milliseconds."""
    ms = [s / 1e6 for s in samples_ns]
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "count": len(ms),
        "p50_ms": round(cuts[49], 4),
        "p95_ms": round(cuts[94], 4),
        "p99_ms": round(cuts[98], 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        "min_ms": round(min(ms), 4),
        "max_ms": round(max(ms), 4),
    }


def throughput_summary(events: int, batch_samples_ns: Sequence[int]) -> dict:
    """Summarise a bulk run: events per second over the timed batches, and batch latencies."""
    seconds = sum(batch_samples_ns) / 1e9
    return {
        "events": events,
        "seconds": round(seconds, 4),
        "events_per_s": round(events / seconds, 1),
        "batch": latency_summary(batch_samples_ns),
    }
