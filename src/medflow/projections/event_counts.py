"""Catch-up projection: events recorded per type and day (feeds metrics)."""

from collections import Counter
from collections.abc import Sequence

from django.db import connection
from django.db.models import F

from medflow.eventstore.store import RecordedEvent
from medflow.projections.catalog import Projection, register_catch_up
from medflow.projections.models import EventCount


def count_event(recorded: RecordedEvent) -> None:
    # An increment is not idempotent: this projection shows any event applied twice.
    day = recorded.timestamp.date()
    updated = EventCount.objects.filter(event_type=recorded.event_type, day=day).update(
        count=F("count") + 1
    )
    if not updated:
        EventCount.objects.create(event_type=recorded.event_type, day=day, count=1)


def count_events(events: Sequence[RecordedEvent]) -> None:
    """Add a page of events to the counts: one upsert per (type, day), in one round trip."""
    counts = Counter((recorded.event_type, recorded.timestamp.date()) for recorded in events)
    if not counts:
        return
    table = connection.ops.quote_name(EventCount._meta.db_table)  # a rebuild's shadow, too
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (event_type, day, count) VALUES (%s, %s, %s)"
            f" ON CONFLICT (event_type, day) DO UPDATE SET count = {table}.count + excluded.count",
            [[event_type, day.isoformat(), count] for (event_type, day), count in counts.items()],
        )


event_counts = register_catch_up(Projection(
    "event_counts", [EventCount], count_event, handle_batch=count_events, needs_payload=False,
))
