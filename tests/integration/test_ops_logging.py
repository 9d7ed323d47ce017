"""Slow-query log (SQL text, never parameters) and structured JSON logs with request and user ids."""

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from django.db import connection
from django.test import Client

from medflow.access.tokens import create_token
from medflow.ops import slowlog
from medflow.ops.jsonlog import JsonFormatter, RequestContextFilter

pytestmark = pytest.mark.django_db

SECRET = "Ada-Lovelace-1815-PHI"


def slow_statement() -> str:
    if connection.vendor == "postgresql":
        return "SELECT pg_sleep(0.05), %s::text"
    return ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)"
            " SELECT COUNT(*), %s FROM c")


def test_slow_queries_are_logged_with_sql_and_duration_but_never_params(settings, caplog):
    connection.ensure_connection()
    assert slowlog.slow_query_logger in connection.execute_wrappers  # installed on connect
    settings.MEDFLOW_SLOW_QUERY_MS = 1
    with caplog.at_level(logging.WARNING, logger="medflow.slow_query"), connection.cursor() as cursor:
        cursor.execute(slow_statement(), [SECRET])
    records = [r for r in caplog.records if r.name == "medflow.slow_query"]
    assert len(records) == 1
    record = records[0]
    assert record.duration_ms >= 1
    assert "%s" in record.sql and ("FROM c" in record.sql or "pg_sleep" in record.sql)
    assert SECRET not in record.getMessage()
    assert all(SECRET not in str(value) for value in record.__dict__.values())
    assert SECRET not in JsonFormatter().format(record)


def test_the_slow_query_log_can_be_turned_off(settings, caplog):
    settings.MEDFLOW_SLOW_QUERY_MS = -1
    with caplog.at_level(logging.WARNING, logger="medflow.slow_query"), connection.cursor() as cursor:
        cursor.execute(slow_statement(), [SECRET])
    assert not [r for r in caplog.records if r.name == "medflow.slow_query"]


@pytest.fixture
def json_lines():
    """Capture medflow.requests log lines as the JSON handler writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("medflow.requests")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_request_lines_carry_request_and_user_ids_and_no_query_string(doctor, registered, json_lines):
    _, raw = create_token(doctor)
    response = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(
        "/api/patients", {"q": "Lovelace"}, HTTP_X_REQUEST_ID="req-ops-1")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-ops-1"
    line = next(entry for entry in json_lines() if entry["path"] == "/api/patients")
    assert line["request_id"] == "req-ops-1"
    assert line["user_id"] == str(doctor.pk)
    assert (line["method"], line["status"], line["level"]) == ("GET", 200, "INFO")
    assert "Lovelace" not in json.dumps(json_lines())


def test_a_request_without_an_id_gets_one(json_lines):
    response = Client().get("/health")
    given = response["X-Request-ID"]
    assert len(given) == 36
    line = next(entry for entry in json_lines() if entry["path"] == "/health")
    assert line["request_id"] == given and line["user_id"] is None


def test_log_format_json_setting_switches_the_console_to_json_lines():
    code = ("import django, logging; django.setup();"
            " logging.getLogger('medflow.test').warning('hello %s', 'ops')")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "medflow.settings", "MEDFLOW_LOG_FORMAT": "json",
           "DATABASE_URL": ""}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert entry["message"] == "hello ops" and entry["logger"] == "medflow.test"
    assert entry["level"] == "WARNING" and "request_id" in entry and "user_id" in entry
