"""Check the store against the seeds' validation rules: continuous versions per stream, ordered
timestamps, and every payload valid against its schema."""

from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection

from medflow.errors import MedflowError
from medflow.eventstore import store
from medflow.eventstore.backends import dialect


def _id(value: object) -> str:
    return str(dialect().uuid_out(value))


@dataclass(frozen=True)
class Violation:
    rule: str
    subject: str
    detail: str


def version_gaps() -> Iterator[Violation]:
    """Yield streams whose versions are not 1..n without gaps, or whose stream row disagrees."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT aggregate_id, COUNT(*), MIN(version), MAX(version) FROM event_store"
            " GROUP BY aggregate_id HAVING COUNT(*) <> MAX(version) OR MIN(version) <> 1"
        )
        for aggregate_id, count, low, high in cursor.fetchall():
            yield Violation("version_continuity", _id(aggregate_id),
                            f"{count} events with versions {low}..{high}")
        cursor.execute(
            "SELECT s.aggregate_id, s.version, COALESCE(MAX(e.version), 0) FROM streams s"
            " LEFT JOIN event_store e ON e.aggregate_id = s.aggregate_id"
            " GROUP BY s.aggregate_id, s.version HAVING s.version <> COALESCE(MAX(e.version), 0)"
        )
        for aggregate_id, stream_version, event_version in cursor.fetchall():
            yield Violation("version_continuity", _id(aggregate_id),
                            f"stream row says version {stream_version}, events end at {event_version}")


def disordered() -> Iterator[Violation]:
    """Yield events whose timestamp or position goes backwards within their stream."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT aggregate_id, version, prev_time, timestamp, prev_position, position FROM ("
            " SELECT aggregate_id, version, timestamp, position,"
            " LAG(timestamp) OVER (PARTITION BY aggregate_id ORDER BY version) AS prev_time,"
            " LAG(position) OVER (PARTITION BY aggregate_id ORDER BY version) AS prev_position"
            " FROM event_store) AS t WHERE prev_time > timestamp OR prev_position > position"
        )
        for aggregate_id, version, prev_time, time, prev_position, position in cursor.fetchall():
            if prev_position > position:
                yield Violation("position_order", _id(aggregate_id),
                                f"version {version} at position {position} < {prev_position}")
            else:
                yield Violation("timestamp_order", _id(aggregate_id),
                                f"version {version} at {time} is before version {version - 1} at "
                                f"{prev_time}")


def invalid_payloads(batch: int = 2000) -> Iterator[Violation]:
    """Yield events whose payload does not validate against its (upcast) schema."""
    after = 0
    while rows := store.read_rows(after, batch):
        for row in rows:
            try:
                store.decode_row(row)
            except MedflowError as exc:
                yield Violation("data_schema_valid", f"{_id(row[2])} v{row[5]}",
                                f"{row[4]} at position {row[1]}: {exc.message}")
            except ValueError as exc:
                yield Violation("data_schema_valid", f"{_id(row[2])} v{row[5]}",
                                f"{row[4]} at position {row[1]}: unreadable ({exc})")
        after = rows[-1][1]


def check_store() -> Iterator[Violation]:
    """Yield every violation of the store's rules."""
    yield from version_gaps()
    yield from disordered()
    yield from invalid_payloads()
