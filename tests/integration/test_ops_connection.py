"""PostgreSQL sessions: the options MedFlow sets on every connection."""

import pytest
from django.db import connection

from medflow.settings import database_config


def test_jit_is_off_and_the_urls_own_options_are_kept():
    config = database_config(
        "postgres://medflow@db.example:5432/medflow?options=-c%20statement_timeout%3D5000")
    assert config["OPTIONS"]["options"] == "-c jit=off -c statement_timeout=5000"
    assert database_config("postgres://medflow@db.example/medflow")["OPTIONS"]["options"] == (
        "-c jit=off")


@pytest.mark.django_db
def test_sessions_run_without_jit():
    if connection.vendor != "postgresql":
        pytest.skip("JIT is a PostgreSQL setting")
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


def test_statements_are_prepared_after_five_runs_unless_turned_off(monkeypatch):
    url = "postgres://medflow@db.example/medflow"
    assert database_config(url)["OPTIONS"]["prepare_threshold"] == 5
    monkeypatch.setenv("MEDFLOW_DB_PREPARE", "off")
    assert database_config(url)["OPTIONS"]["prepare_threshold"] is None
    monkeypatch.setenv("MEDFLOW_DB_PREPARE", "0")
    assert database_config(url)["OPTIONS"]["prepare_threshold"] == 0


@pytest.mark.django_db
def test_a_repeated_statement_of_the_store_is_prepared_by_the_server():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are a PostgreSQL matter here")
    from medflow.eventstore.store import binding_cursor

    sql = "SELECT count(*) FROM event_store WHERE position > %s"
    with binding_cursor() as cursor:
        for _ in range(6):
            cursor.execute(sql, [0])
        cursor.execute("SELECT count(*) FROM pg_prepared_statements"
                       " WHERE statement LIKE 'SELECT count(*) FROM event_store WHERE position%%'")
        assert cursor.fetchone()[0] == 1


def test_a_number_setting_that_is_not_one_names_its_variable(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from medflow.settings import env_number

    monkeypatch.setenv("MEDFLOW_DB_PREPARE", "five")
    with pytest.raises(ImproperlyConfigured, match="MEDFLOW_DB_PREPARE must be an integer, not 'five'"):
        database_config("postgres://medflow@db.example/medflow")
    monkeypatch.setenv("MEDFLOW_SLOW_QUERY_MS", "1,5")
    with pytest.raises(ImproperlyConfigured, match="MEDFLOW_SLOW_QUERY_MS must be a number"):
        env_number("MEDFLOW_SLOW_QUERY_MS", "1000", float)
    monkeypatch.setenv("MEDFLOW_SLOW_QUERY_MS", "")
    assert env_number("MEDFLOW_SLOW_QUERY_MS", "1000", float) == 1000.0


@pytest.mark.django_db(transaction=True)
def test_a_statement_prepared_before_a_column_type_changed_runs_again_outside_transactions():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are a PostgreSQL matter here")
    import psycopg

    from medflow.eventstore.store import binding_cursor

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE prepared_probe (id integer PRIMARY KEY, label varchar(10))")
        cursor.execute("INSERT INTO prepared_probe VALUES (1, 'a')")
    try:
        sql = "SELECT id, label FROM prepared_probe WHERE id = %s"
        with binding_cursor() as cursor:
            for _ in range(6):
                cursor.execute(sql, [1])
            # Another process migrates the column (as `medflow migrate` would beside a server).
            with psycopg.connect(connection.connection.info.dsn, autocommit=True) as other:
                other.execute("ALTER TABLE prepared_probe ALTER COLUMN label TYPE varchar(20)")
            cursor.execute(sql, [1])
            assert cursor.fetchall() == [(1, "a")]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE prepared_probe")


@pytest.mark.django_db
def test_times_are_parsed_in_c_and_read_back_as_django_reads_them():
    from datetime import UTC, datetime, timedelta, timezone

    from medflow.projections.models import Checkpoint

    if connection.vendor != "postgresql":
        pytest.skip("the timestamptz loader is psycopg's")
    times = [datetime(2026, 12, 7, 10, 30, 1, 123456, tzinfo=UTC),
             datetime(1899, 12, 31, 23, 59, 59, tzinfo=UTC),
             datetime(2500, 1, 1, tzinfo=timezone(timedelta(hours=-5)))]
    for index, moment in enumerate(times):
        Checkpoint.objects.create(name=f"t{index}", last_error_at=moment)
    read = [Checkpoint.objects.get(name=f"t{index}").last_error_at for index in range(3)]
    assert read == times
    assert all(value.tzinfo is UTC for value in read)  # what Django's own loader gives
    with connection.cursor() as cursor:
        # The class Django checks before each cursor carries its time zone; an instance parses
        # with psycopg's C function instead of the Python method.
        loader = cursor.cursor.adapters.get_loader(1184, 0)(1184, cursor.cursor)
    assert loader.timezone is connection.timezone
    assert type(loader.load.__self__).__module__ == "psycopg_binary._psycopg"
