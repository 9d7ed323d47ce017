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
