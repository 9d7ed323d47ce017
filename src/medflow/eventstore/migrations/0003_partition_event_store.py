"""Partition event_store by month on `timestamp` (PostgreSQL; a no-op on SQLite).

A partitioned table's primary key and unique constraints must include the partition key, so:
- the primary key becomes (position, timestamp); `position` still comes from one sequence and
  stays unique in practice (nothing else writes it);
- `id` is unique with the timestamp, (id, timestamp);
- (aggregate_id, version) keeps its uniqueness through the `streams` table (each append moves a
  stream's version with a compare-and-set, under a row lock) and gets a plain index here.

The table is recreated and its rows copied in this migration's transaction: it either converts
completely or not at all. Set MEDFLOW_EVENT_STORE_PARTITIONING=0 before migrating to keep a plain
table. The Django model state is left as it was (the ORM only reads and updates this table; the
store writes it with SQL of its own). Reversing copies the rows back into a plain table with the
original constraints.
"""

import os
from datetime import UTC, date, datetime

from django.db import migrations

COLUMNS = ("position, id, aggregate_id, aggregate_type, event_type, event_data, metadata, version,"
           " timestamp")

INDEXES = (
    "CREATE INDEX event_store_type_time_idx ON event_store (aggregate_type, timestamp)",
    "CREATE INDEX event_store_event_time_idx ON event_store (event_type, timestamp)",
    "CREATE INDEX event_store_time_idx ON event_store (timestamp)",
)


def _enabled() -> bool:
    value = os.environ.get("MEDFLOW_EVENT_STORE_PARTITIONING", "1").strip().lower()
    return value not in {"0", "false", "off", "no"}


def _relkind(cursor) -> str | None:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('event_store')")
    row = cursor.fetchone()
    return row[0] if row else None


def forwards(apps, schema_editor):
    conn = schema_editor.connection
    if conn.vendor != "postgresql" or not _enabled():
        return
    from medflow.ops.partitions import add_months, create_month, month_start

    with conn.cursor() as cursor:
        if _relkind(cursor) != "r":
            return
        cursor.execute("LOCK TABLE event_store IN ACCESS EXCLUSIVE MODE")
        cursor.execute("CREATE SEQUENCE event_store_p_position_seq")
        cursor.execute(
            "CREATE TABLE event_store_p ("
            " position bigint NOT NULL DEFAULT nextval('event_store_p_position_seq'),"
            " id uuid NOT NULL,"
            " aggregate_id uuid NOT NULL,"
            " aggregate_type varchar(100) NOT NULL,"
            " event_type varchar(100) NOT NULL,"
            " event_data jsonb NOT NULL,"
            " metadata jsonb NOT NULL,"
            " version integer NOT NULL,"
            " timestamp timestamptz NOT NULL,"
            " CONSTRAINT event_store_p_pkey PRIMARY KEY (position, timestamp),"
            " CONSTRAINT event_store_p_id_key UNIQUE (id, timestamp)"
            ") PARTITION BY RANGE (timestamp)"
        )
        cursor.execute("CREATE TABLE event_store_default PARTITION OF event_store_p DEFAULT")
        # Rename now so that the partitions are made for (and named after) event_store.
        cursor.execute("ALTER TABLE event_store RENAME TO event_store_old")
        cursor.execute("ALTER TABLE event_store_p RENAME TO event_store")
        cursor.execute("SELECT MIN(timestamp) FROM event_store_old")
        oldest = cursor.fetchone()[0]
        today = datetime.now(UTC).date()
        month = month_start(oldest.astimezone(UTC).date() if oldest else today)
        while month <= add_months(month_start(today), 3):
            create_month(cursor, month)
            month = add_months(month, 1)
        cursor.execute(f"INSERT INTO event_store ({COLUMNS}) SELECT {COLUMNS} FROM event_store_old")
        cursor.execute(
            "SELECT setval('event_store_p_position_seq',"
            " COALESCE((SELECT MAX(position) FROM event_store), 0) + 1, false)")
        cursor.execute("DROP TABLE event_store_old")
        cursor.execute("ALTER SEQUENCE event_store_p_position_seq RENAME TO event_store_position_seq")
        cursor.execute("ALTER SEQUENCE event_store_position_seq OWNED BY event_store.position")
        cursor.execute("ALTER TABLE event_store RENAME CONSTRAINT event_store_p_pkey TO event_store_pkey")
        cursor.execute("ALTER TABLE event_store RENAME CONSTRAINT event_store_p_id_key"
                       " TO event_store_id_key")
        cursor.execute("CREATE INDEX event_store_aggregate_version_idx"
                       " ON event_store (aggregate_id, version)")
        for sql in INDEXES:
            cursor.execute(sql)


def backwards(apps, schema_editor):
    conn = schema_editor.connection
    if conn.vendor != "postgresql":
        return
    with conn.cursor() as cursor:
        if _relkind(cursor) != "p":
            return
        cursor.execute("LOCK TABLE event_store IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            "CREATE TABLE event_store_u ("
            " position bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY,"
            " id uuid NOT NULL,"
            " aggregate_id uuid NOT NULL,"
            " aggregate_type varchar(100) NOT NULL,"
            " event_type varchar(100) NOT NULL,"
            " event_data jsonb NOT NULL,"
            " metadata jsonb NOT NULL,"
            " version integer NOT NULL,"
            " timestamp timestamptz NOT NULL)"
        )
        cursor.execute(f"INSERT INTO event_store_u ({COLUMNS}) SELECT {COLUMNS} FROM event_store"
                       " ORDER BY position")
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('event_store_u', 'position'),"
            " COALESCE((SELECT MAX(position) FROM event_store_u), 0) + 1, false)")
        cursor.execute("DROP TABLE event_store")  # and its partitions and sequence
        cursor.execute("ALTER TABLE event_store_u RENAME TO event_store")
        cursor.execute("ALTER SEQUENCE event_store_u_position_seq RENAME TO event_store_position_seq")
        cursor.execute("ALTER TABLE event_store ADD CONSTRAINT event_store_pkey PRIMARY KEY (position)")
        cursor.execute("ALTER TABLE event_store ADD CONSTRAINT event_store_id_key UNIQUE (id)")
        cursor.execute("ALTER TABLE event_store ADD CONSTRAINT event_store_aggregate_version_key"
                       " UNIQUE (aggregate_id, version)")
        for sql in INDEXES:
            cursor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ("eventstore", "0002_data_keys_and_stream_subject"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
