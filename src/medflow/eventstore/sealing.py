"""Seal the personal fields of an event payload with its data subject's key, and open them.

A sealed payload keeps its other fields in clear and holds the personal ones in one envelope:
`{"_sealed": {"s": subject id, "f": [field names], "n": nonce, "c": ciphertext}}`. The event id is
the AES-GCM associated data, so a ciphertext moved to another event fails to open.
"""

import functools
import os
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medflow.errors import InvalidInput
from medflow.eventstore import crypto
from medflow.eventstore.events import REDACTED, DomainEvent

ENVELOPE = "_sealed"


def seal(
    event: DomainEvent, payload: dict[str, Any], event_id: UUID, aggregate_id: UUID,
    keys: dict[UUID, AESGCM],
) -> dict[str, Any]:
    """Return the payload with the event's personal fields encrypted (unchanged if none)."""
    fields = [name for name in event.personal_fields if name in payload]
    subject = event.data_subject(aggregate_id)
    if not fields or subject is None:
        return payload
    key = keys.get(subject)
    if key is None:
        key = keys[subject] = crypto.key_for_writing(subject)
    nonce = os.urandom(12)
    secret = orjson.dumps({name: payload[name] for name in fields})
    sealed = {k: v for k, v in payload.items() if k not in fields}
    sealed[ENVELOPE] = {
        "s": str(subject), "f": fields, "n": crypto.b64e(nonce),
        "c": crypto.b64e(key.encrypt(nonce, secret, event_id.bytes)),
    }
    return sealed


@functools.lru_cache(maxsize=65_536)
def _subject(text: str) -> UUID:
    # A replay opens many events of each subject: parse each id once.
    return UUID(text)


def subjects(payloads: Iterable[dict[str, Any]]) -> set[UUID]:
    """Return the data subjects whose keys are needed to open these payloads."""
    return {_subject(p[ENVELOPE]["s"]) for p in payloads if ENVELOPE in p}


def open_payload(
    data: dict[str, Any], event_id: UUID, keys: dict[UUID, AESGCM | None]
) -> tuple[dict[str, Any], frozenset[str]]:
    """Return the payload with its personal fields decrypted, and the fields redacted instead
    (all of them when the subject's key was destroyed, none otherwise).

    `data` is taken over: a freshly parsed payload, opened in place (a replay opens every
    event, and a copy of each costs more than the decryption).
    """
    envelope = data.pop(ENVELOPE, None)
    if envelope is None:
        return data, frozenset()
    key = keys.get(_subject(envelope["s"]))
    if key is None:
        data.update(dict.fromkeys(envelope["f"], REDACTED))
        return data, frozenset(envelope["f"])
    try:
        secret = key.decrypt(crypto.b64d(envelope["n"]), crypto.b64d(envelope["c"]), event_id.bytes)
    except InvalidTag:
        raise InvalidInput(f"sealed fields of event {event_id} fail their integrity check",
                           field="event_data") from None
    data.update(orjson.loads(secret))
    return data, frozenset()
