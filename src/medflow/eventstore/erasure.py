"""Erase a data subject: destroy their data key, drop snapshots and cache entries of their streams.

The events stay (versions continuous); their personal fields read back as redacted from then on.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from medflow.eventstore import crypto
from medflow.eventstore.cache import cache
from medflow.eventstore.commands import cache_key
from medflow.eventstore.models import Snapshot, Stream


@dataclass(frozen=True)
class Hold:
    """A record type that must be kept until a date."""

    aggregate_type: str
    keep_until: datetime


def retention_holds(subject_id: UUID, years_by_type: dict[str, int]) -> list[Hold]:
    """Return the subject's record types still inside their retention period."""
    now = timezone.now()
    latest: dict[str, datetime] = {}
    for aggregate_type, updated in Stream.objects.filter(subject_id=subject_id).values_list(
        "aggregate_type", "updated_at"
    ):
        latest[aggregate_type] = max(updated, latest.get(aggregate_type, updated))
    holds = []
    for aggregate_type, updated in sorted(latest.items()):
        years = years_by_type.get(aggregate_type, 0)
        keep_until = updated + timedelta(days=round(365.25 * years))
        if years and keep_until > now:
            holds.append(Hold(aggregate_type, keep_until))
    return holds


def erase_subject(subject_id: UUID) -> int:
    """Destroy the subject's key and drop their snapshots; purge their cache entries after
    commit. Return how many streams the subject has. Runs in the caller's transaction."""
    streams = list(Stream.objects.filter(subject_id=subject_id).values_list(
        "aggregate_type", "aggregate_id"))
    crypto.destroy(subject_id)
    Snapshot.objects.filter(aggregate_id__in=[aggregate_id for _, aggregate_id in streams]).delete()

    def purge() -> None:
        for aggregate_type, aggregate_id in streams:
            cache.delete(cache_key(aggregate_type, aggregate_id))

    transaction.on_commit(purge)
    return len(streams)
