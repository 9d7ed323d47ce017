"""Read the global log page by page for a projection: only the event types it reads, decoded
(opened, upcast, validated) only when it reads payloads."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from medflow.eventstore import store
from medflow.eventstore.backends import dialect
from medflow.eventstore.store import RecordedEvent

HEADERS = "id, position, aggregate_id, aggregate_type, event_type, version, timestamp"


@dataclass(frozen=True)
class Page:
    """Events of one page, and how far the log was read for it."""

    events: list[RecordedEvent]
    # Every position up to here was read (a checkpoint may move there).
    read_to: int
    # True when the page reached the head of the log (or `until`).
    last: bool


def read_page(
    after: int, limit: int, *, event_types: Iterable[str] | None = None,
    until: int | None = None, decode: bool = True, window: int | None = None,
) -> Page:
    """Return the events after position `after` (and up to `until`), in log order.

    Without `event_types`, up to `limit` events. With them, the events of those types among the
    next `window` positions (default `limit`): a window of positions keeps each query an index
    range scan however rare the types are. With `decode` false the events carry their headers only (`event` is
    None, `metadata` empty), for projections that count or date events without reading them.
    """
    sql = f"SELECT {'{columns}' if decode else HEADERS} FROM event_store WHERE position > %s"
    params: list = [after]
    if event_types is None:
        if until is not None:
            sql += " AND position <= %s"
            params.append(until)
        sql += " ORDER BY position LIMIT %s"
        params.append(limit)
        rows = _fetch(sql, params, decode)
        return Page(_events(rows, decode), rows[-1][1] if rows else after, len(rows) < limit)
    # Positions become visible in order (appends hold the global-order lock to commit), so
    # every position up to the head read here is readable by the next statement.
    bound = store.last_position() if until is None else until
    upper = min(after + (window or limit), bound)
    types = sorted(event_types)
    if upper <= after or not types:
        return Page([], max(after, upper), True)
    # Materialized: the window is read by position alone. Left to itself, PostgreSQL may AND
    # in the event-type index, and scan every entry of those types for each page.
    rows = _fetch(
        f"WITH page AS MATERIALIZED ({sql} AND position <= %s)"
        f" SELECT * FROM page WHERE event_type IN ({', '.join(['%s'] * len(types))})"
        " ORDER BY position",
        [*params, upper, *types], decode,
    )
    return Page(_events(rows, decode), upper, upper >= bound)


def _fetch(sql: str, params: list, decode: bool) -> list:
    if decode:
        return store.select_events(sql, params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _events(rows: list, decode: bool) -> list[RecordedEvent]:
    if decode:
        return store.decode_rows(rows)
    d = dialect()
    return [
        RecordedEvent(id=d.uuid_out(row[0]), position=row[1], aggregate_id=d.uuid_out(row[2]),
                      aggregate_type=row[3], event_type=row[4], version=row[5],
                      timestamp=d.time_out(row[6]), metadata={}, event=None)  # type: ignore[arg-type]
        for row in rows
    ]
