"""Apply the retention periods: archive streams whose records need no longer be kept.

settings.MEDFLOW_RETENTION_YEARS gives, per aggregate type, how many years a record is kept after
its last change (the rule that also holds back forgetting a patient, see
medflow.eventstore.erasure.retention_holds). Types it does not name are kept for good.

"Archived" means: the stream is listed in the `retention_archive` table (type, clinic, patient,
version, last change, period applied, when), and its snapshots and cache entries, which are derived
and kept only for speed, are dropped. Its events stay: the event log is the legal record, the
global order must stay gap-free, and deleting a patient's data is done by forgetting (crypto-
shredding), never by deleting events. Read models are untouched, so that rebuilds and
verification agree. The archive list is what an export to cold storage, or a later purge decided
by a person, works from. A stream that changes after it was archived is live again: the next run
takes it off the list.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from medflow.access.models import ArchivedStream
from medflow.eventstore.cache import cache
from medflow.eventstore.commands import cache_key
from medflow.eventstore.models import Snapshot, Stream


@dataclass
class RetentionReport:
    """What a run archived (or would archive), by aggregate type, and what became live again."""

    archived: Counter = field(default_factory=Counter)
    reactivated: int = 0
    snapshots_dropped: int = 0
    dry_run: bool = False

    @property
    def total(self) -> int:
        """Return how many streams were (or would be) archived."""
        return sum(self.archived.values())


def cutoff(years: int, now: datetime) -> datetime:
    """Return the last-change time before which a record kept `years` years may be archived."""
    return now - timedelta(days=round(365.25 * years))


def due_streams(years_by_type: dict[str, int], now: datetime):
    """Return the streams past their retention period and not archived yet."""
    due = Q(pk__in=[])
    for aggregate_type, years in years_by_type.items():
        if years > 0:
            due |= Q(aggregate_type=aggregate_type, updated_at__lte=cutoff(years, now))
    archived = ArchivedStream.objects.values("aggregate_id")
    return Stream.objects.filter(due).exclude(aggregate_id__in=archived).order_by("updated_at")


def apply_retention(
    years_by_type: dict[str, int], *, now: datetime | None = None, dry_run: bool = False,
    batch: int = 1000,
) -> RetentionReport:
    """Archive every stream past its retention period; with `dry_run`, only count them."""
    now = now or timezone.now()
    report = RetentionReport(dry_run=dry_run)
    with transaction.atomic():
        live_again = live_again_rows()
        report.reactivated = live_again.count()
        rows = list(due_streams(years_by_type, now))
        report.archived.update(row.aggregate_type for row in rows)
        if dry_run:
            return report
        live_again.delete()
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            ArchivedStream.objects.bulk_create([
                ArchivedStream(
                    aggregate_id=r.aggregate_id, aggregate_type=r.aggregate_type,
                    clinic_id=r.clinic_id, subject_id=r.subject_id, version=r.version,
                    last_changed=r.updated_at, retention_years=years_by_type[r.aggregate_type],
                    archived_at=now,
                )
                for r in chunk
            ])
            dropped, _ = Snapshot.objects.filter(
                aggregate_id__in=[r.aggregate_id for r in chunk]).delete()
            report.snapshots_dropped += dropped
        keys = [cache_key(r.aggregate_type, r.aggregate_id) for r in rows]

        def purge() -> None:
            for key in keys:
                cache.delete(key)

        transaction.on_commit(purge)
    return report


def live_again_rows():
    """Return the archive rows whose stream changed after it was archived."""
    newer = Stream.objects.filter(aggregate_id=OuterRef("aggregate_id"), version__gt=OuterRef("version"))
    return ArchivedStream.objects.filter(Exists(newer))
