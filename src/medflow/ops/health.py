"""Health checks: database, cache, broker (when configured), projection lag.

The answer says which check failed and nothing else: no error text, no host names, no data.
"""

import socket
import time
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import connection


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


def check_cache() -> dict:
    key = f"medflow:health:{uuid.uuid4().hex}"
    django_cache.set(key, "1", 5)
    ok = django_cache.get(key) == "1"
    django_cache.delete(key)
    return {"ok": ok}


def check_broker(url: str) -> dict:
    parts = urlsplit(url)
    default_port = {"amqp": 5672, "amqps": 5671, "nats": 4222, "tls": 4222}.get(parts.scheme, 5672)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port),
                                  timeout=1.0):
        pass
    return {"ok": True}


def check_projections() -> dict:
    from medflow.projections import runner

    limit = settings.MEDFLOW_HEALTH_MAX_LAG_SECONDS
    statuses = [s for s in runner.status() if s.kind != "inline"]
    lag_events = max((s.lag_events for s in statuses), default=0)
    lag_seconds = max((s.lag_seconds for s in statuses), default=0.0)
    failing = sorted(s.name for s in statuses if s.last_error)
    ok = limit is None or lag_seconds <= limit
    return {"ok": ok, "lag_events": lag_events, "lag_seconds": lag_seconds, "failing": failing}


def run_checks() -> tuple[bool, dict]:
    """Run every check; return (healthy, report). A check that raises is a failed check."""
    checks = {"database": check_database, "cache": check_cache}
    broker = getattr(settings, "BROKER_URL", "")
    if broker:
        checks["broker"] = lambda: check_broker(broker)
    checks["projections"] = check_projections
    report: dict = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            result = check()
        except Exception as exc:  # report the kind of failure only, never its message
            result = {"ok": False, "error": type(exc).__name__}
        result["ms"] = round((time.perf_counter() - started) * 1000, 1)
        report[name] = result
        if name == "database" and not result["ok"]:
            # Projection lag needs the database; do not pay a second timeout.
            report["projections"] = {"ok": False, "error": "database unavailable"}
            break
    healthy = all(r["ok"] for r in report.values())
    return healthy, {"status": "ok" if healthy else "unavailable", "checks": report}
