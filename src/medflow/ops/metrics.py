"""Prometheus metrics: counters kept in-process, and gauges read from the database at scrape time.

Counters (appends, their latency, failed commands) live in this process. Under a multi-process
server (gunicorn with several workers) set PROMETHEUS_MULTIPROC_DIR to an empty directory shared
by the workers, so that every scrape sums all of them (prometheus_client's multiprocess mode).
"""

import logging
import os

from django.db import connection
from django.db.models import Sum
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

appended_events = Counter(
    "medflow_events_appended", "Events appended to the store", ["aggregate_type"])
appends = Counter("medflow_appends", "Append calls (one per command that recorded events)")
append_seconds = Histogram(
    "medflow_append_seconds", "Time taken by one append (lock, version claim, insert)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
failed_commands = Counter(
    "medflow_failed_commands", "API requests refused with a MedFlow error, by error code", ["code"])


def observe_append(aggregate_type: str, count: int, seconds: float) -> None:
    """Count one append (registered in medflow.eventstore.store.append_observers)."""
    try:
        appends.inc()
        appended_events.labels(aggregate_type=aggregate_type).inc(count)
        append_seconds.observe(seconds)
    except Exception:  # metrics never break a write
        log.exception("append metrics failed")


def count_failed_command(code: str) -> None:
    """Count one request refused with a MedflowError of this code."""
    failed_commands.labels(code=code).inc()


def _store_size() -> tuple[int, int | None]:
    """Return (rows, bytes) of event_store: an estimate on PostgreSQL, exact rows on SQLite."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The parent table and its partitions (if partitioned); reltuples is the planner's
            # estimate, kept by ANALYZE / autovacuum: counting a large log at every scrape is not.
            cursor.execute(
                "SELECT COALESCE(SUM(GREATEST(c.reltuples, 0)), 0)::bigint,"
                " COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c"
                " WHERE c.oid = 'event_store'::regclass OR c.oid IN"
                " (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'event_store'::regclass)")
            rows, size = cursor.fetchone()
            return int(rows), int(size)
        cursor.execute("SELECT COUNT(*) FROM event_store")
        rows = cursor.fetchone()[0]
        cursor.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        return int(rows), int(cursor.fetchone()[0])


class DatabaseCollector:
    """Gauges read at scrape time: events by type, store size, projection lag, cache."""

    def collect(self):
        from medflow.eventstore import store
        from medflow.eventstore.cache import cache
        from medflow.projections import runner
        from medflow.projections.models import EventCount

        by_type = GaugeMetricFamily(
            "medflow_events_by_type", "Events recorded, by type (event_counts projection)",
            labels=["event_type"])
        for row in EventCount.objects.values("event_type").annotate(n=Sum("count")):
            by_type.add_metric([row["event_type"]], row["n"])
        yield by_type

        rows, size = _store_size()
        yield GaugeMetricFamily("medflow_event_store_rows", "Rows in event_store (estimate on "
                                "PostgreSQL)", value=rows)
        yield GaugeMetricFamily("medflow_event_store_last_position", "Highest global position",
                                value=store.last_position())
        if size is not None:
            yield GaugeMetricFamily(
                "medflow_event_store_bytes",
                "event_store size with indexes (PostgreSQL); whole database file (SQLite)",
                value=size)

        lag_events = GaugeMetricFamily("medflow_projection_lag_events",
                                       "Events a projection has yet to apply", labels=["projection"])
        lag_seconds = GaugeMetricFamily("medflow_projection_lag_seconds",
                                        "Age of the oldest event a projection has yet to apply",
                                        labels=["projection"])
        failing = GaugeMetricFamily("medflow_projection_failing",
                                    "1 when the projection's last batch failed", labels=["projection"])
        for status in runner.status():
            lag_events.add_metric([status.name], status.lag_events)
            lag_seconds.add_metric([status.name], status.lag_seconds)
            failing.add_metric([status.name], 1 if status.last_error else 0)
        yield lag_events
        yield lag_seconds
        yield failing

        stats = cache.stats()
        for name in ("hits", "misses", "errors"):
            yield GaugeMetricFamily(f"medflow_cache_{name}", f"Aggregate cache {name} (this process)",
                                    value=stats[name])
        if stats["hit_rate"] is not None:
            yield GaugeMetricFamily("medflow_cache_hit_rate",
                                    "Aggregate cache hit rate (this process)", value=stats["hit_rate"])


def render() -> bytes:
    """Return every metric in Prometheus text format."""
    from prometheus_client import REGISTRY

    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    output = generate_latest(registry)
    db_registry = CollectorRegistry()
    db_registry.register(DatabaseCollector())
    return output + generate_latest(db_registry)
