"""Snapshots: an aggregate's state at a version, discarded when the state schema changes."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from django.conf import settings
from django.db import connection

from medflow.eventstore.backends import dialect
from medflow.eventstore.store import fast_cursor


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    version: int
    schema_version: int
    state: dict[str, Any]


def snapshot_every(aggregate_type: str) -> int:
    """Return how many events apart snapshots of this aggregate type are taken (0: never)."""
    per_type = getattr(settings, "MEDFLOW_SNAPSHOT_EVERY_BY_TYPE", {})
    return per_type.get(aggregate_type, settings.MEDFLOW_SNAPSHOT_EVERY)


def latest(
    aggregate_id: UUID, schema_version: int, max_version: int | None = None,
    as_of: datetime | None = None,
):
    """Return the newest snapshot of the current schema version, at or below `max_version`,
    and, with `as_of`, of a version whose event was recorded by then."""
    d = dialect()
    sql = (
        "SELECT s.version, s.schema_version, s.state FROM snapshots s"
        " WHERE s.aggregate_id = %s AND s.schema_version = %s"
    )
    params: list[Any] = [d.uuid_in(aggregate_id), schema_version]
    if max_version is not None:
        sql += " AND s.version <= %s"
        params.append(max_version)
    if as_of is not None:
        sql += (
            " AND EXISTS (SELECT 1 FROM event_store e WHERE e.aggregate_id = s.aggregate_id"
            " AND e.version = s.version AND e.timestamp <= %s)"
        )
        params.append(d.time_in(as_of))
    sql += " ORDER BY s.version DESC LIMIT 1"
    with fast_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return StoredSnapshot(row[0], row[1], orjson.loads(row[2]))


def save(
    aggregate_id: UUID, aggregate_type: str, version: int, schema_version: int,
    state: dict[str, Any],
) -> None:
    """Store a snapshot (a second one at the same version is ignored)."""
    d = dialect()
    with fast_cursor() as cursor:
        cursor.execute(
            "INSERT INTO snapshots (aggregate_id, aggregate_type, version, schema_version, state,"
            f" created_at) VALUES (%s, %s, %s, %s, {d.json_param}, %s)"
            " ON CONFLICT (aggregate_id, version) DO NOTHING",
            [
                d.uuid_in(aggregate_id), aggregate_type, version, schema_version,
                orjson.dumps(state).decode(), d.time_in(datetime.now(UTC)),
            ],
        )


def delete_for(aggregate_id: UUID) -> None:
    """Drop every snapshot of an aggregate."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM snapshots WHERE aggregate_id = %s", [dialect().uuid_in(aggregate_id)]
        )
