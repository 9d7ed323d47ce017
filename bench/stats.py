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


def _rate(batch_size: int, samples_ns: Sequence[int]) -> float:
    return round(batch_size * len(samples_ns) / (sum(samples_ns) / 1e9), 1)


def throughput_summary(batch_size: int, batch_samples_ns: Sequence[int]) -> dict:
    """Summarise batches: events/s overall and in the first and last tenth, batch latencies."""
    tenth = max(1, len(batch_samples_ns) // 10)
    return {
        "events": batch_size * len(batch_samples_ns),
        "seconds": round(sum(batch_samples_ns) / 1e9, 4),
        "events_per_s": _rate(batch_size, batch_samples_ns),
        # Indexes grow with the log; these show how much the rate drifts over the run.
        "events_per_s_first_tenth": _rate(batch_size, batch_samples_ns[:tenth]),
        "events_per_s_last_tenth": _rate(batch_size, batch_samples_ns[-tenth:]),
        "batch": latency_summary(batch_samples_ns) if len(batch_samples_ns) > 1 else None,
    }
