"""TLS options in DATABASE_URL reach the PostgreSQL driver (sslmode, certificates)."""

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.db.backends.postgresql.base import DatabaseWrapper

from medflow.settings import database_config

TLS_QUERY = "sslmode=verify-full&sslrootcert=/etc/medflow/ca.pem&sslcert=/etc/medflow/client.pem" \
            "&sslkey=/etc/medflow/client.key"


def test_tls_options_of_the_url_become_connection_options():
    config = database_config(f"postgres://medflow:secret@db.example:5432/medflow?{TLS_QUERY}")
    options = config["OPTIONS"]
    assert options["sslmode"] == "verify-full"
    assert (options["sslrootcert"], options["sslcert"], options["sslkey"]) == (
        "/etc/medflow/ca.pem", "/etc/medflow/client.pem", "/etc/medflow/client.key")
    assert "pool" in options  # TLS and pooling go together
    params = DatabaseWrapper({**config, "TIME_ZONE": None, "ATOMIC_REQUESTS": False,
                              "AUTOCOMMIT": True}).get_connection_params()
    assert params["sslmode"] == "verify-full" and params["sslrootcert"] == "/etc/medflow/ca.pem"


def _live_config(query: str) -> dict:
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    config = database_config(f"{url}?{query}")
    config["OPTIONS"].pop("pool", None)
    return {**config, "TIME_ZONE": None, "ATOMIC_REQUESTS": False, "AUTOCOMMIT": True}


@pytest.mark.django_db
def test_the_driver_honours_sslmode_against_the_server():
    if connection.vendor != "postgresql":
        pytest.skip("TLS options apply to PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute("SHOW ssl")
        server_ssl = cursor.fetchone()[0] == "on"
    plain = DatabaseWrapper(_live_config("sslmode=disable"), alias="tls-plain")
    with plain.cursor() as cursor:
        cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cursor.fetchone()[0] is False
    plain.close()
    required = DatabaseWrapper(_live_config("sslmode=require"), alias="tls-required")
    if server_ssl:
        with required.cursor() as cursor:
            cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cursor.fetchone()[0] is True
        required.close()
    else:
        # A server without TLS refuses a client that requires it: the option was honoured.
        with pytest.raises(OperationalError, match="SSL"):
            required.ensure_connection()
