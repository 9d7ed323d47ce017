"""What differs between PostgreSQL and SQLite, and nothing else.

Both backends run the same statements; only parameter encoding, JSON casts and the
global-order lock differ.
"""

from datetime import UTC, datetime
from uuid import UUID

from django.db import connection
from django.utils.dateparse import parse_datetime

# Arbitrary constant key of the advisory lock that serialises appends on PostgreSQL.
GLOBAL_ORDER_LOCK = 0x4D4544464C4F57  # "MEDFLOW"


class Dialect:
    """SQL details of one backend."""

    vendor = ""
    json_param = "%s"

    def uuid_in(self, value: UUID) -> object:
        """Encode a UUID as this backend stores Django's UUIDField."""
        return value

    def uuid_out(self, value: object) -> UUID:
        """Decode a UUID read from this backend."""
        return value if isinstance(value, UUID) else UUID(str(value))

    def time_in(self, value: datetime) -> object:
        """Encode an aware datetime as Django stores it on this backend."""
        return connection.ops.adapt_datetimefield_value(value)

    def time_out(self, value: object) -> datetime:
        """Decode a stored timestamp into an aware UTC datetime."""
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        parsed = parse_datetime(str(value))
        if parsed is None:
            raise ValueError(f"unreadable timestamp {value!r}")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def lock_global_order(self, cursor) -> None:
        """Hold, until commit, the lock that makes positions become visible in order."""

    def commit_without_waiting(self, cursor) -> None:
        """Let the current transaction commit without waiting for its log to reach the disk.

        For bulk writers that can redo their latest work (the resumable legacy migration): a
        crash loses the latest such transactions only, whole and in order, never a part of one.
        A later synchronous commit that writes flushes every one before it."""


class PostgresDialect(Dialect):
    vendor = "postgresql"
    json_param = "%s::jsonb"

    def lock_global_order(self, cursor) -> None:
        # Sequence values are taken at insert but become visible at commit, so without this a
        # reader could see position 42 before 41 commits and skip 41 forever. Holding one
        # transaction-scoped lock from before the insert to the commit makes commit order equal
        # position order (the choice of the eventsourcing library and Commanded; see DESIGN.md).
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [GLOBAL_ORDER_LOCK])

    def commit_without_waiting(self, cursor) -> None:
        # This transaction only (SET LOCAL); PostgreSQL's asynchronous commit.
        cursor.execute("SET LOCAL synchronous_commit = off")


class SqliteDialect(Dialect):
    vendor = "sqlite"

    def uuid_in(self, value: UUID) -> object:
        return value.hex

    # SQLite writers are serialised by BEGIN IMMEDIATE already: nothing more to lock. Its
    # commits always wait for the disk here (synchronous=FULL for the whole connection).


def dialect() -> Dialect:
    """Return the dialect of the default connection."""
    vendor = connection.vendor
    if vendor == "postgresql":
        return _POSTGRES
    if vendor == "sqlite":
        return _SQLITE
    raise RuntimeError(f"unsupported database backend {vendor}")


_POSTGRES = PostgresDialect()
_SQLITE = SqliteDialect()
