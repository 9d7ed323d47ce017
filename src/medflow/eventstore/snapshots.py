"""Snapshots: an aggregate's state at a version, discarded when the state schema changes."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from django.conf import settings
from django.db import connection

from medflow.eventstore import store
from medflow.eventstore.backends import dialect
from medflow.eventstore.events import DomainEvent
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


def latest_with_events(
    aggregate_id: UUID, schema_version: int, max_version: int | None = None,
) -> tuple[StoredSnapshot | None, list[tuple[int, DomainEvent]]]:
    """Return the newest usable snapshot (as `latest`) and the events after it up to
    `max_version`, as (version, event) pairs, read in one round trip.

    The snapshot's state comes on the first row only.
    """
    d = dialect()
    pg = d.vendor == "postgresql"
    bound = " AND version <= %s" if max_version is not None else ""
    state = "s.state::text" if pg else "s.state"
    sql = (
        "WITH s AS (SELECT version, state FROM snapshots"
        f" WHERE aggregate_id = %s AND schema_version = %s{bound}"
        " ORDER BY version DESC LIMIT 1)"
        # Versions after a snapshot run on without a gap: the first event's is the next one.
        " SELECT s.version, CASE WHEN e.version IS NULL"
        f" OR e.version = COALESCE(s.version, 0) + 1 THEN {state} END, {store.fold_columns('e')}"
        " FROM (SELECT 1 AS one) AS one LEFT JOIN s ON 1 = 1"
        " LEFT JOIN event_store e ON e.aggregate_id = %s"
        f" AND e.version > COALESCE(s.version, 0){bound.replace('version', 'e.version')}"
        " ORDER BY e.version"
    )
    subject = d.uuid_in(aggregate_id)
    params: list[Any] = [subject, schema_version]
    params += [max_version] if max_version is not None else []
    params += [subject] + ([max_version] if max_version is not None else [])
    with fast_cursor() as cursor:
        if pg:
            cursor.execute(sql, params, binary=True)
        else:
            cursor.execute(sql, params)
        rows = cursor.fetchall()
    snapshot = None
    if rows[0][0] is not None:
        snapshot = StoredSnapshot(rows[0][0], schema_version, orjson.loads(rows[0][1]))
    events = store.decode_fold_rows([row[2:] for row in rows if row[2] is not None])
    return snapshot, events


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
