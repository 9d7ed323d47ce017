"""Monthly partitions of event_store (PostgreSQL): the table's shape, events spanning three
months in the default and monthly partitions, and `medflow partitions ensure` moving rows."""

import uuid
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from medflow.eventstore import store
from medflow.ops import partitions
from medflow.ops.partitions import add_months, month_start, partition_name

pytestmark = pytest.mark.django_db


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("event_store is partitioned on PostgreSQL only")
    if not partitions.is_partitioned():
        pytest.skip("partitioning turned off (MEDFLOW_EVENT_STORE_PARTITIONING=0)")


def one(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_event_store_is_partitioned_by_month_with_a_default(postgres_only):
    assert one("SELECT pg_get_partkeydef('event_store'::regclass)") == [("RANGE (\"timestamp\")",)]
    key = one("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
              " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'event_store'::regclass"
              " AND i.indisprimary ORDER BY a.attname")
    assert [row[0] for row in key] == ["position", "timestamp"]
    names = {p.name for p in partitions.list_partitions()}
    this_month = month_start(datetime.now(UTC).date())
    assert "event_store_default" in names
    assert {partition_name(add_months(this_month, n)) for n in range(4)} <= names  # post_migrate


def test_sqlite_has_nothing_to_partition():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite behaviour")
    out = StringIO()
    call_command("partitions", "ensure", "--ahead", "3", stdout=out)
    assert "not partitioned" in out.getvalue()
    assert partitions.ensure_partitions() == []


def where_rows_live(aggregate_id) -> list[str]:
    rows = one("SELECT tableoid::regclass::text FROM event_store WHERE aggregate_id = %s"
               " ORDER BY version", [aggregate_id])
    return [row[0] for row in rows]


def test_events_spanning_three_months_load_and_read_in_order(postgres_only, clinic):
    template = store.load(clinic.id)[0]
    source = one("SELECT event_data::text, metadata::text FROM event_store WHERE id = %s",
                 [template.id])[0]
    this_month = month_start(datetime.now(UTC).date())
    months = [add_months(this_month, -2), add_months(this_month, -1), this_month]
    stamps = [datetime(m.year, m.month, 15, 12, tzinfo=UTC) for m in months]
    aggregate_id = uuid.uuid4()
    head = store.last_position()
    for version, stamp in enumerate(stamps, start=1):
        one("INSERT INTO event_store (id, aggregate_id, aggregate_type, event_type, version,"
            " timestamp, event_data, metadata) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)"
            " RETURNING position",
            [uuid.uuid4(), aggregate_id, template.aggregate_type, template.event_type, version,
             stamp, *source])
    # The two past months have no partition yet: their rows wait in the default one.
    assert where_rows_live(aggregate_id) == ["event_store_default", "event_store_default",
                                             partition_name(this_month)]

    def check():
        loaded = store.load(aggregate_id)
        assert [(e.version, e.timestamp) for e in loaded] == list(zip([1, 2, 3], stamps, strict=True))
        assert store.load(aggregate_id, as_of=stamps[1]) == loaded[:2]
        logged = [e for e in store.read_all(after=head) if e.aggregate_id == aggregate_id]
        assert [e.version for e in logged] == [1, 2, 3]
        assert [e.position for e in logged] == sorted(e.position for e in logged)

    check()
    out = StringIO()
    call_command("partitions", "ensure", "--ahead", "3", "--since", months[0].strftime("%Y-%m"),
                 stdout=out)
    assert f"created {partition_name(months[0])}" in out.getvalue()
    assert where_rows_live(aggregate_id) == [partition_name(m) for m in months]
    assert one("SELECT COUNT(*) FROM event_store_default") == [(0,)]
    check()
    # Running it again creates nothing.
    assert partitions.ensure_partitions(ahead=3, since=months[0]) == []


def test_appends_still_refuse_a_stale_version(postgres_only, clinic):
    from medflow.errors import VersionConflict

    with pytest.raises(VersionConflict):
        store.append(clinic.id, "Clinic", [store.load(clinic.id)[0].event], 0, {})
