"""Inline projection: add every event that concerns a patient to the patient timeline."""

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from uuid import UUID

from django.utils.dateparse import parse_datetime

from medflow.eventstore.events import DomainEvent
from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent
from medflow.patients.domain import PatientForgotten
from medflow.projections.bulk import insert_rows
from medflow.projections.rowsql import insert_row
from medflow.timeline.models import TimelineEntry

# The tables this projection owns, in insert order (rebuild and verify use it).
READ_MODELS = [TimelineEntry]


def patient_of(recorded: RecordedEvent) -> UUID | None:
    """Return the patient an event is about: the Patient stream itself, or a `patient_id` field."""
    if recorded.aggregate_type == "Patient":
        return recorded.aggregate_id
    return recorded.event.value_of("patient_id")


def occurred_at(recorded: RecordedEvent) -> datetime:
    """Return when the fact happened: the event's effective-time field, the migration's
    original time in the metadata, or else when it was recorded."""
    field = recorded.event.effective_time_field
    value = getattr(recorded.event, field, None) if field else None
    if value is None and recorded.metadata.get("effective_time"):
        value = parse_datetime(recorded.metadata["effective_time"])
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        # UTC, as every recorded time is (and a deferred append's is not known yet).
        return datetime.combine(value, time(), tzinfo=UTC)
    return recorded.timestamp


def kind_of(recorded: RecordedEvent) -> str:
    return recorded.event.timeline_kind or recorded.aggregate_type.lower()


@inline.on(PatientForgotten)
def forget(recorded: RecordedEvent) -> None:
    # The entries carry personal data in clear: a forgotten patient's go.
    TimelineEntry.objects.filter(patient_id=recorded.aggregate_id).delete()


def entry_values(recorded: RecordedEvent) -> dict | None:
    """Return the timeline row of an event, or None when it concerns no patient."""
    patient_id = patient_of(recorded)
    if patient_id is None:
        return None
    # A redacted event's own summary may format fields that now hold "[redacted]".
    summary = (DomainEvent.summary(recorded.event) if recorded.redacted
               else recorded.event.summary())
    meta = recorded.metadata
    return {
        "position": recorded.position, "event_id": recorded.id, "patient_id": patient_id,
        "aggregate_id": recorded.aggregate_id, "aggregate_type": recorded.aggregate_type,
        "event_type": recorded.event_type, "version": recorded.version, "kind": kind_of(recorded),
        "summary": summary[:300], "occurred_at": occurred_at(recorded),
        "recorded_at": recorded.timestamp, "username": meta.get("username") or "",
        "role": meta.get("role") or "", "reason": meta.get("reason") or "", "data": recorded.data,
    }


@inline.on_every
@inline.pending_safe
def add_to_timeline(recorded: RecordedEvent) -> None:
    values = entry_values(recorded)
    if values is not None:
        insert_row(TimelineEntry, values)


@inline.batched(PatientForgotten)
def add_batch(events: Sequence[RecordedEvent]) -> None:
    """Add the timeline rows of a page of events (a forgetting goes one by one, in order)."""
    insert_rows(TimelineEntry, [v for v in map(entry_values, events) if v is not None])
