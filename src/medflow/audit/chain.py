"""Append to the access log's hash chain and check it."""

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import orjson
from django.db import transaction
from django.utils import timezone

from medflow.audit.models import AccessLogEntry, ChainHead
from medflow.context import Context
from medflow.eventstore.integrity import Violation

GENESIS = "0" * 64
HASHED = ("at", "user_id", "username", "role", "clinic_id", "patient_id", "action", "request_id",
          "client_ip", "reason", "break_glass")


def entry_hash(prev_hash: str, values: dict) -> str:
    """Return the hash of an entry: SHA-256 over the previous hash and the entry's fields."""
    canonical = {name: values[name] for name in HASHED}
    canonical["at"] = _instant(canonical["at"])
    canonical["clinic_id"] = str(canonical["clinic_id"]) if canonical["clinic_id"] else None
    canonical["patient_id"] = str(canonical["patient_id"])
    body = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def record_reads(ctx: Context, action: str, reads: list[tuple[UUID, UUID | None, bool]]) -> int:
    """Append one entry per patient read (duplicates in one request folded); return how many."""
    seen: dict[UUID, tuple[UUID | None, bool]] = {}
    for patient_id, clinic_id, break_glass in reads:
        seen.setdefault(patient_id, (clinic_id, break_glass))
    if not seen:
        return 0
    now = timezone.now()
    with transaction.atomic():
        ChainHead.objects.get_or_create(id=1, defaults={"hash": GENESIS})
        head = ChainHead.objects.select_for_update().get(id=1)
        prev = head.hash
        entries = []
        for patient_id, (clinic_id, break_glass) in seen.items():
            values = {
                "at": now, "user_id": ctx.user_id, "username": ctx.username, "role": ctx.role,
                "clinic_id": clinic_id, "patient_id": patient_id, "action": action[:300],
                "request_id": ctx.request_id or "", "client_ip": ctx.client_ip or "",
                "reason": ctx.reason or "", "break_glass": break_glass,
            }
            digest = entry_hash(prev, values)
            entries.append(AccessLogEntry(**values, prev_hash=prev, hash=digest))
            prev = digest
        AccessLogEntry.objects.bulk_create(entries)
        head.hash, head.count = prev, head.count + len(entries)
        head.save(update_fields=["hash", "count"])
    return len(entries)


def check_chain(batch: int = 5000) -> Iterator[Violation]:
    """Yield every entry whose hash or link does not hold, and a head that disagrees."""
    prev, count, after = GENESIS, 0, 0
    while True:
        rows = list(AccessLogEntry.objects.filter(id__gt=after).order_by("id")[:batch].values())
        if not rows:
            break
        for row in rows:
            count += 1
            if row["prev_hash"] != prev:
                yield Violation("access_log_chain", f"access_log {row['id']}",
                                "link broken: an entry before it was changed or removed")
            if entry_hash(row["prev_hash"], row) != row["hash"]:
                yield Violation("access_log_chain", f"access_log {row['id']}",
                                "hash mismatch: the entry was changed")
            prev = row["hash"]
        after = rows[-1]["id"]
    head = ChainHead.objects.filter(id=1).first()
    if head is not None and (head.hash != prev or head.count != count):
        yield Violation("access_log_chain", "access_log head",
                        f"head says {head.count} entries ending {head.hash[:12]}, found {count}"
                        f" ending {prev[:12]}: entries were removed from the end")
