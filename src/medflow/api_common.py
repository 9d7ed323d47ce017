"""Pieces every app's API uses: error responses, If-Match, Idempotency-Key, as_of."""

import re
from datetime import datetime
from uuid import UUID

from ninja import Schema

from medflow.errors import InvalidInput, PreconditionRequired


class ErrorBody(Schema):
    code: str
    message: str
    field: str | None


class ErrorOut(Schema):
    error: ErrorBody


class WriteOut(Schema):
    id: UUID
    version: int


ERRORS = {
    400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut,
    428: ErrorOut,
}

_ETAG = re.compile(r'^(?:W/)?"?(\d+)"?$')


def parse_if_match(value: str | None, *, required: bool) -> int | None:
    """Read the version the caller last saw from If-Match (`3`, `"3"` or `W/"3"`)."""
    if not value:
        if required:
            raise PreconditionRequired(
                "send If-Match with the version you last read", field="If-Match"
            )
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise InvalidInput("If-Match must be a version number such as \"3\"", field="If-Match")
    return int(match.group(1))


def parse_command_id(value: str | None) -> UUID | None:
    """Read the optional Idempotency-Key header (a UUID) as the command id."""
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInput("Idempotency-Key must be a UUID", field="Idempotency-Key") from None


def require_aware(as_of: datetime | None) -> datetime | None:
    """Refuse an `as_of` without a time zone (it would be read in an arbitrary zone)."""
    if as_of is not None and as_of.tzinfo is None:
        raise InvalidInput("as_of needs a time zone, e.g. 2026-01-31T12:00:00Z", field="as_of")
    return as_of
