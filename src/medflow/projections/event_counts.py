"""Catch-up projection: events recorded per type and day (feeds metrics)."""

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


event_counts = register_catch_up(Projection("event_counts", [EventCount], count_event))
