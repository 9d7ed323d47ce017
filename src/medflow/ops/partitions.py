"""Monthly partitions of event_store on PostgreSQL (RANGE on `timestamp`, UTC months).

Migration eventstore.0003 turns event_store into a partitioned table with a DEFAULT partition
(rows of a month without a partition land there) and monthly partitions named
event_store_yYYYYmMM. `ensure_partitions` creates the missing months from a start month through
`ahead` months after the current one; rows already in the default partition for such a month are
moved into it, in one transaction. `medflow partitions ensure` and every `medflow migrate` run it.
SQLite has no partitions: every function here is a no-op there.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import connection, transaction

TABLE = "event_store"
DEFAULT_PARTITION = "event_store_default"
# Serialises concurrent `ensure` runs (a deploy's migrate beside a cron job).
ENSURE_LOCK = 0x4D46_5041_5254  # "MFPART"


def month_start(day: date) -> date:
    return date(day.year, day.month, 1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{TABLE}_y{month.year:04d}m{month.month:02d}"


def _bound(month: date) -> str:
    # A literal, not a parameter: partition bounds are DDL. Built from a date, never from input.
    return f"'{month.isoformat()} 00:00:00+00'"


def is_partitioned(using_connection=None) -> bool:
    """Tell whether event_store is a partitioned table (PostgreSQL after migration 0003)."""
    conn = using_connection or connection
    if conn.vendor != "postgresql":
        return False
    with conn.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return bool(row and row[0] == "p")


@dataclass(frozen=True)
class Partition:
    name: str
    bounds: str
    rows_estimate: int


def list_partitions() -> list[Partition]:
    """Return the partitions of event_store with their bounds (empty when not partitioned)."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), GREATEST(c.reltuples, 0)::bigint"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY c.relname", [TABLE])
        return [Partition(*row) for row in cursor.fetchall()]


def create_month(cursor, month: date) -> bool:
    """Create the partition of one month if missing, moving its rows out of the default
    partition; return True when it was created. Runs in the caller's transaction."""
    name = partition_name(month)
    cursor.execute("SELECT to_regclass(%s)", [name])
    if cursor.fetchone()[0] is not None:
        return False
    lo, hi = _bound(month), _bound(add_months(month, 1))
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION}"
        f" WHERE timestamp >= {lo} AND timestamp < {hi})")
    if not cursor.fetchone()[0]:
        cursor.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES FROM ({lo}) TO ({hi})")
        return True
    # The default partition holds rows of this month: attaching a partition over them would
    # fail, so move them first (the default partition stays locked until commit).
    cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE timestamp >= {lo}"
        f" AND timestamp < {hi} RETURNING *) INSERT INTO {name} SELECT * FROM moved")
    cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})")
    return True


def ensure_partitions(ahead: int = 3, since: date | None = None, today: date | None = None,
                      using_connection=None) -> list[str]:
    """Create the monthly partitions from `since` (default: this month) through `ahead` months
    after this month; return the names created. A no-op unless event_store is partitioned."""
    conn = using_connection or connection
    if not is_partitioned(conn):
        return []
    this_month = month_start(today or datetime.now(UTC).date())
    month = month_start(since) if since else this_month
    last = add_months(this_month, ahead)
    created = []
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ENSURE_LOCK])
        while month <= last:
            if create_month(cursor, month):
                created.append(partition_name(month))
            month = add_months(month, 1)
    return created


def after_migrate(sender, using="default", **kwargs) -> None:
    """post_migrate receiver: keep the coming months' partitions in place."""
    from django.conf import settings
    from django.db import connections

    conn = connections[using]
    if conn.vendor == "postgresql":
        ensure_partitions(ahead=settings.MEDFLOW_PARTITIONS_AHEAD, using_connection=conn)
