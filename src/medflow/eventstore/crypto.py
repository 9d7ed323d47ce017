"""Per-subject data keys for personal data in events (crypto-shredding).

Each data subject (a patient) has a random AES-256-GCM data key, stored wrapped by the master key
(MEDFLOW_MASTER_KEY). Destroying the data key makes every ciphertext of that subject unreadable
for good, while the events themselves stay in the log with continuous versions.
"""

import base64
import binascii
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import connection

from medflow.errors import RuleViolated
from medflow.eventstore.backends import GLOBAL_ORDER_LOCK, dialect


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def b64d(text: str) -> bytes:
    # base64.urlsafe_b64decode, without its generic argument checks: a replay calls this twice
    # per sealed event.
    return binascii.a2b_base64(text.encode().translate(_FROM_URLSAFE))


def key_id(master: bytes) -> str:
    """Return a short public fingerprint of a master key."""
    return hashlib.sha256(b"medflow-master-key" + master).hexdigest()[:16]


def parse_master_key(text: str) -> bytes:
    """Decode a base64 master key and check it is 32 bytes."""
    try:
        raw = b64d(text.strip())
    except ValueError as exc:
        raise ValueError("a master key is 32 bytes in URL-safe base64") from exc
    if len(raw) != 32:
        raise ValueError("a master key is 32 bytes in URL-safe base64")
    return raw


def generate_master_key() -> str:
    """Return a new random master key, base64-encoded."""
    return b64e(os.urandom(32))


def master_keys() -> tuple[str, dict[str, AESGCM]]:
    """Return the current master key's id and every known master key (current and previous)."""
    current = parse_master_key(settings.MEDFLOW_MASTER_KEY)
    keys = {key_id(current): AESGCM(current)}
    for text in settings.MEDFLOW_PREVIOUS_MASTER_KEYS:
        old = parse_master_key(text)
        keys[key_id(old)] = AESGCM(old)
    return key_id(current), keys


def _wrap(subject_id: UUID, raw_key: bytes) -> tuple[str, str]:
    current, keys = master_keys()
    nonce = os.urandom(12)
    return b64e(nonce + keys[current].encrypt(nonce, raw_key, subject_id.bytes)), current


def _unwrap(subject_id: UUID, wrapped: str, master_id: str) -> bytes:
    _, keys = master_keys()
    if master_id not in keys:
        raise RuntimeError(
            f"data key of {subject_id} is wrapped by master key {master_id}, which is not"
            " configured (set MEDFLOW_PREVIOUS_MASTER_KEYS)"
        )
    raw = b64d(wrapped)
    return keys[master_id].decrypt(raw[:12], raw[12:], subject_id.bytes)


# Unwrapped data keys by (subject, wrapped key, master key id, master keys configured): every
# command and every page of a replay would otherwise unwrap the same keys again. The wrapped key
# is always read from the database first, so a destroyed key (stored as '') is never served.
_UNWRAPPED: OrderedDict[tuple, AESGCM] = OrderedDict()
UNWRAPPED_MAX = 10_000
_UNWRAPPED_LOCK = threading.Lock()


def data_key(subject_id: UUID, wrapped: str, master_id: str) -> AESGCM:
    """Return the subject's data key from its wrapped form (unwrapping each one only once)."""
    cache_key = (subject_id, wrapped, master_id, settings.MEDFLOW_MASTER_KEY,
                 tuple(settings.MEDFLOW_PREVIOUS_MASTER_KEYS))
    with _UNWRAPPED_LOCK:
        key = _UNWRAPPED.get(cache_key)
        if key is not None:
            _UNWRAPPED.move_to_end(cache_key)
            return key
    key = AESGCM(_unwrap(subject_id, wrapped, master_id))
    with _UNWRAPPED_LOCK:
        _UNWRAPPED[cache_key] = key
        if len(_UNWRAPPED) > UNWRAPPED_MAX:
            _UNWRAPPED.popitem(last=False)
    return key


def _forget_unwrapped(subject_id: UUID) -> None:
    with _UNWRAPPED_LOCK:
        for cache_key in [k for k in _UNWRAPPED if k[0] == subject_id]:
            del _UNWRAPPED[cache_key]


_SELECT_KEY = (
    "SELECT wrapped_key, master_key_id, destroyed_at FROM data_keys WHERE subject_id = %s"
)
_INSERT_KEY = (
    "INSERT INTO data_keys (subject_id, wrapped_key, master_key_id, created_at)"
    " VALUES (%s, %s, %s, %s) ON CONFLICT (subject_id) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class NewDataKey:
    """A data key made for a subject that may have none yet, and its wrapped form to store."""

    key: AESGCM
    wrapped: str
    master_id: str


def new_data_key(subject_id: UUID) -> NewDataKey:
    """Make a random data key for the subject, wrapped by the current master key."""
    raw = AESGCM.generate_key(bit_length=256)
    wrapped, master_id = _wrap(subject_id, raw)
    return NewDataKey(AESGCM(raw), wrapped, master_id)


def key_for_writing(subject_id: UUID) -> AESGCM:
    """Return the subject's data key, creating it on first use; refuse a destroyed one."""
    from medflow.eventstore.store import fast_cursor

    d = dialect()
    subject = d.uuid_in(subject_id)
    new_key = new_data_key(subject_id)
    new_row = [subject, new_key.wrapped, new_key.master_id, d.time_in(datetime.now(UTC))]
    with fast_cursor() as cursor:
        if d.vendor == "postgresql":
            # One round trip: create the key unless the subject has one, and read the one it
            # has. The SELECT sees the table as the statement began, so when a concurrent
            # writer created the key meanwhile, neither part finds it: read it again then.
            # Only appends create keys, and an append holds the global-order lock before it
            # waits on any row (see store.append): so does this statement, as a one-time
            # filter evaluated before the insert (re-taking a lock already held is a no-op).
            cursor.execute(
                "WITH created AS (INSERT INTO data_keys (subject_id, wrapped_key, master_key_id,"
                " created_at) SELECT %s, %s, %s, %s"
                " WHERE (SELECT pg_advisory_xact_lock(%s)) IS NOT NULL"
                " ON CONFLICT (subject_id) DO NOTHING RETURNING subject_id)"
                " SELECT (SELECT count(*) FROM created), k.wrapped_key, k.master_key_id,"
                " k.destroyed_at FROM (SELECT 1) AS one"
                " LEFT JOIN data_keys AS k ON k.subject_id = %s",
                [*new_row, GLOBAL_ORDER_LOCK, subject],
            )
            created, *row = cursor.fetchone()
            if created:
                return new_key.key
            if row[0] is None and row[2] is None:
                cursor.execute(_SELECT_KEY, [subject])
                row = cursor.fetchone()
        else:
            # SQLite serialises writers: nobody can create the key between these two.
            cursor.execute(_SELECT_KEY, [subject])
            row = cursor.fetchone()
            if row is None:
                cursor.execute(_INSERT_KEY, new_row)
                return new_key.key
    wrapped, master_id, destroyed = row
    if destroyed is not None:
        raise RuleViolated(f"the data of {subject_id} was forgotten; nothing more can be stored",
                           code="subject_forgotten")
    return data_key(subject_id, wrapped, master_id)


def keys_for_reading(subject_ids: Iterable[UUID]) -> dict[UUID, AESGCM | None]:
    """Return the data keys of these subjects; None for a destroyed (forgotten) one."""
    subjects = list(set(subject_ids))
    if not subjects:
        return {}
    d = dialect()
    found: dict[UUID, AESGCM | None] = dict.fromkeys(subjects)
    for subject, wrapped, master_id in _rows_of_subjects(
            "subject_id, wrapped_key, master_key_id", "destroyed_at IS NULL", subjects):
        subject = d.uuid_out(subject)
        found[subject] = data_key(subject, wrapped, master_id)
    return found


def forgotten_among(subject_ids: Iterable[UUID]) -> UUID | None:
    """Return one of these subjects whose key was destroyed (forgotten), or None."""
    rows = list(_rows_of_subjects("subject_id", "destroyed_at IS NOT NULL",
                                  list(set(subject_ids))))
    return dialect().uuid_out(rows[0][0]) if rows else None


def _rows_of_subjects(columns: str, condition: str, subjects: list[UUID]) -> Iterator[tuple]:
    """Yield `columns` of the data_keys rows of these subjects that meet `condition`, a few
    hundred subjects a query (SQLite's parameter limit)."""
    d = dialect()
    with connection.cursor() as cursor:
        for start in range(0, len(subjects), 500):
            chunk = subjects[start:start + 500]
            cursor.execute(
                f"SELECT {columns} FROM data_keys WHERE {condition}"
                f" AND subject_id IN ({', '.join(['%s'] * len(chunk))})",
                [d.uuid_in(s) for s in chunk],
            )
            yield from cursor.fetchall()


def destroy(subject_id: UUID) -> bool:
    """Destroy a subject's data key for good; return whether there was one to destroy."""
    d = dialect()
    _forget_unwrapped(subject_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE data_keys SET wrapped_key = '', destroyed_at = %s"
            " WHERE subject_id = %s AND destroyed_at IS NULL",
            [d.time_in(datetime.now(UTC)), d.uuid_in(subject_id)],
        )
        return cursor.rowcount == 1


def rotate(batch: int = 1000) -> int:
    """Re-wrap every live data key under the current master key; return how many changed."""
    current, _ = master_keys()
    d = dialect()
    changed = 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT subject_id, wrapped_key, master_key_id FROM data_keys"
            " WHERE destroyed_at IS NULL AND master_key_id <> %s", [current],
        )
        rows = cursor.fetchall()
        for subject, wrapped, master_id in rows:
            subject = d.uuid_out(subject)
            new_wrapped, _ = _wrap(subject, _unwrap(subject, wrapped, master_id))
            cursor.execute(
                "UPDATE data_keys SET wrapped_key = %s, master_key_id = %s WHERE subject_id = %s",
                [new_wrapped, current, d.uuid_in(subject)],
            )
            changed += 1
    return changed
