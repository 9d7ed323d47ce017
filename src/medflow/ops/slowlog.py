"""Log database queries slower than MEDFLOW_SLOW_QUERY_MS, with the SQL text and never its
parameters (they carry patient data): the statement with its %s placeholders is enough to find
the query, and the log stays free of PHI."""

import logging
import time

from django.conf import settings

log = logging.getLogger("medflow.slow_query")
MAX_SQL = 2000


def slow_query_logger(execute, sql, params, many, context):
    """A connection.execute_wrapper: time the statement, log it without params when slow."""
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        threshold = settings.MEDFLOW_SLOW_QUERY_MS
        if threshold >= 0 and elapsed_ms >= threshold:
            text = " ".join(str(sql).split())
            log.warning(
                "slow query: %.1f ms: %s", elapsed_ms, text[:MAX_SQL] + ("..." if len(text) > MAX_SQL
                                                                        else ""),
                extra={"duration_ms": round(elapsed_ms, 1), "sql": text[:MAX_SQL],
                       "many": bool(many)},
            )


def install(connection, **_) -> None:
    """Add the logger to a connection once (a connection_created receiver)."""
    if settings.MEDFLOW_SLOW_QUERY_MS < 0:
        return
    if slow_query_logger not in connection.execute_wrappers:
        connection.execute_wrappers.append(slow_query_logger)
