"""More concurrent requests than the connection pool holds: the extra ones get a clear 503
`database_busy` after the pool timeout, and service resumes once a connection is free
(PostgreSQL only: SQLite has no pool)."""

import json
import threading
import urllib.error
import urllib.request

import pytest
from django.db import connection
from django.http import JsonResponse
from django.urls import include, path

from medflow.access.tokens import create_token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(__name__)]

acquired = threading.Event()
release = threading.Event()


def hold_connection(request):
    """Take a pooled connection and keep it until the test says so."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    acquired.set()
    release.wait(30)
    return JsonResponse({"held": True})


def query(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


urlpatterns = [
    path("ops-test/hold", hold_connection),
    path("ops-test/query", query),
    path("", include("medflow.urls")),
]


def call(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


@pytest.fixture
def pool_of_one():
    if connection.vendor != "postgresql":
        pytest.skip("connection pooling is PostgreSQL only")
    options = connection.settings_dict["OPTIONS"]
    if not options.get("pool"):
        pytest.skip("the pool is turned off (MEDFLOW_DB_POOL=0)")
    saved = options["pool"]
    connection.close()
    connection.close_pool()
    options["pool"] = {"min_size": 1, "max_size": 1, "timeout": 1.0}
    yield
    release.set()
    connection.close()
    connection.close_pool()
    options["pool"] = saved


def test_requests_beyond_the_pool_get_503_database_busy(live_server, doctor, pool_of_one):
    _, token = create_token(doctor)
    connection.close()  # hand our connection back: the live server gets the pool's only one
    acquired.clear()
    release.clear()
    held = {}
    holder = threading.Thread(target=lambda: held.update(answer=call(f"{live_server.url}/ops-test/hold")))
    holder.start()
    try:
        assert acquired.wait(20), "the holding request never got a connection"
        status, headers, body = call(f"{live_server.url}/api/patients", token)
        assert status == 503 and body["error"]["code"] == "database_busy"
        assert headers["Retry-After"] == "1"
        status, _, body = call(f"{live_server.url}/ops-test/query")
        assert status == 503 and body["error"]["code"] == "database_busy"
    finally:
        release.set()
        holder.join(30)
    assert held["answer"][0] == 200
    status, _, body = call(f"{live_server.url}/api/patients", token)
    assert status == 200 and body["count"] == 0
