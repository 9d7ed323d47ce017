"""Run catch-up projections: read the log from a checkpoint kept in the same transaction as the
projection's writes, so that a crash between the two replays nothing twice."""

import os
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone

from medflow.eventstore import store
from medflow.eventstore.backends import dialect
from medflow.projections.catalog import Projection, all_projections
from medflow.projections.models import Checkpoint
from medflow.projections.pages import read_page


def _failpoint(applied: int) -> None:
    # Test hook: MEDFLOW_FAILPOINT=projection-after-apply:N kills the process after N events of a
    # batch were applied but before the batch committed, as a crash or `kill -9` would.
    spec = os.environ.get("MEDFLOW_FAILPOINT", "")
    if spec.startswith("projection-after-apply:") and applied == int(spec.split(":")[1]):
        os._exit(70)


def _locked_checkpoint(name: str) -> Checkpoint:
    Checkpoint.objects.get_or_create(name=name)
    # FOR UPDATE keeps a second worker of the same projection out until we commit.
    return Checkpoint.objects.select_for_update().get(name=name)


def run_once(projection: Projection, batch: int = 500) -> int:
    """Apply the next batch of events to a catch-up projection; return how many were applied."""
    try:
        with transaction.atomic():
            checkpoint = _locked_checkpoint(projection.name)
            page = read_page(checkpoint.position, batch, event_types=projection.event_types,
                             decode=projection.needs_payload)
            events = page.events
            projection.apply(events)
            for applied in range(1, len(events) + 1):
                _failpoint(applied)
            if events:
                checkpoint.position = page.read_to
                checkpoint.processed += len(events)
                checkpoint.last_error = ""
                checkpoint.save(update_fields=["position", "processed", "last_error", "updated_at"])
            return len(events)
    except Exception:
        Checkpoint.objects.filter(name=projection.name).update(
            last_error=traceback.format_exc(limit=5)[-4000:], last_error_at=timezone.now()
        )
        raise


def catch_up(projection: Projection, batch: int = 500) -> int:
    """Apply batches until the projection reaches the head of the log; return the total."""
    total = 0
    while applied := run_once(projection, batch):
        total += applied
    return total


def run_forever(projections: list[Projection], batch: int = 500, idle_sleep: float = 0.5,
                stop=lambda: False) -> None:
    """Keep every catch-up projection at the head of the log until `stop()` says so."""
    while not stop():
        busy = sum(run_once(p, batch) for p in projections)
        if not busy:
            time.sleep(idle_sleep)


@dataclass(frozen=True)
class Status:
    name: str
    kind: str
    position: int
    lag_events: int
    lag_seconds: float
    last_error: str


def status() -> list[Status]:
    """Return position, lag (events and seconds) and last error of every projection."""
    head = store.last_position()
    checkpoints = {c.name: c for c in Checkpoint.objects.all()}
    rows = []
    for name, projection in sorted(all_projections().items()):
        checkpoint = checkpoints.get(name)
        if projection.kind == "inline":
            # Inline projections commit with the events: they are at the head by construction.
            rows.append(Status(name, "inline", head, 0, 0.0, ""))
            continue
        position = checkpoint.position if checkpoint else 0
        lag_events, oldest = _lag(position)
        lag_seconds = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        rows.append(Status(name, projection.kind, position, lag_events, round(lag_seconds, 3),
                           checkpoint.last_error if checkpoint else ""))
    return rows


def _lag(position: int):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), MIN(timestamp) FROM event_store WHERE position > %s", [position]
        )
        count, oldest = cursor.fetchone()
    return count, dialect().time_out(oldest) if oldest else None
