"""Shared fixtures: a clinic, staff contexts, API clients."""

import uuid

import pytest
from asgiref.local import Local
from django.db import connection

from medflow.context import Context, system_context


def pytest_report_header(config):
    from django.conf import settings

    engine, cache = settings.DATABASES["default"]["ENGINE"], settings.CACHES["default"]["BACKEND"]
    return f"database: {engine}, cache: {cache}"


@pytest.fixture(autouse=True, scope="session")
def _private_cache_namespace():
    """Give each test session its own cache key prefix: a shared Redis never leaks between runs."""
    from django.conf import settings
    from django.core.cache import caches

    for config in settings.CACHES.values():
        config["KEY_PREFIX"] = f"medflow-test:{uuid.uuid4().hex[:12]}"
    caches.close_all()
    caches._connections = Local(caches.thread_critical)  # new backends pick up the prefix
    yield


@pytest.fixture(autouse=True)
def _fresh_cache_counters():
    from medflow.eventstore.cache import cache

    cache.reset()
    yield


@pytest.fixture
def backend() -> str:
    """Return the vendor of the database the suite runs on (sqlite or postgresql)."""
    return connection.vendor


@pytest.fixture
def system() -> Context:
    return system_context("test")


@pytest.fixture
def clinic(db, system):
    """Create a clinic through the access service and return its read-model row."""
    from medflow.access.models import ClinicReadModel
    from medflow.access.services import create_clinic

    code = f"c{uuid.uuid4().hex[:8]}"
    result = create_clinic(system, f"Clinic {code}", code)
    return ClinicReadModel.objects.get(id=result.aggregate_id)


@pytest.fixture
def other_clinic(db, system):
    from medflow.access.models import ClinicReadModel
    from medflow.access.services import create_clinic

    result = create_clinic(system, "Elsewhere", f"o{uuid.uuid4().hex[:8]}")
    return ClinicReadModel.objects.get(id=result.aggregate_id)


def make_staff(system, clinic, username: str, role: str = "doctor"):
    """Create a user with a role in a clinic, through the service."""
    from django.contrib.auth import get_user_model

    from medflow.access.services import grant_role

    user = get_user_model().objects.create_user(username=username, password="pw-for-tests-1")
    grant_role(system, clinic.id, username, role)
    return user


@pytest.fixture
def doctor(db, system, clinic):
    return make_staff(system, clinic, "dr_house")


@pytest.fixture
def doctor_ctx(doctor, clinic) -> Context:
    return Context(
        user_id=doctor.pk, username=doctor.username, role="doctor",
        clinic_ids=frozenset({clinic.id}),
    )


PATIENT = {
    "mrn": "MRN-1",
    "given_names": "Ada",
    "family_name": "Lovelace",
    "birth_date": "1980-12-10",
    "sex": "female",
}


@pytest.fixture
def patient_fields() -> dict:
    return dict(PATIENT)


@pytest.fixture
def registered(doctor_ctx, clinic, patient_fields):
    """Register a patient through the service; return its id."""
    from medflow.patients.services import register_patient

    return register_patient(doctor_ctx, clinic_id=clinic.id, **patient_fields).aggregate_id


def _uses_transactions(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    transactional = bool(marker and (marker.kwargs.get("transaction") or (
        marker.args and marker.args[0])))
    return transactional or bool({"transactional_db", "live_server"} & set(request.fixturenames))


@pytest.fixture(autouse=True)
def _access_log_flushable(request):
    """Let the test database be flushed after transactional tests on SQLite.

    The access log refuses DELETE (its append-only triggers); Django flushes SQLite with DELETE
    (PostgreSQL with TRUNCATE, which row triggers do not see). The triggers are lifted for the
    flush only: this fixture sets up after the database fixture, so it tears down before it.
    """
    from django.db import connection

    if not _uses_transactions(request) or connection.vendor != "sqlite":
        yield
        return
    import importlib

    request.getfixturevalue("transactional_db")
    triggers = importlib.import_module("medflow.audit.migrations.0002_append_only")
    with connection.schema_editor() as editor:
        triggers.backwards(None, editor)
        triggers.forwards(None, editor)
    yield
    with connection.schema_editor() as editor:
        triggers.backwards(None, editor)


@pytest.fixture
def exchanges(monkeypatch):
    """Record what each pipelined round trip sent: BEGIN, PREPARE, EXECUTE, COMMIT, SYNC. An
    exchange may send its commands in several parts (streamed); it ends with the Sync, and
    `.parts` holds how many parts each one had."""
    from medflow.eventstore import pipeline

    class Exchanges(list):
        parts: list[int] = []

    sent = Exchanges()
    sent.parts = []
    real = pipeline._communicate
    part: list[str] = []
    count = [0]

    def spy(conn, pgconn, commands):
        names = {"send_prepare": "PREPARE", "send_query_prepared": "EXECUTE",
                 "send_query_params": "EXECUTE", "pipeline_sync": "SYNC"}
        part.extend(c.args[0].decode() if getattr(c, "args", None) and c.args[0] in
                    (b"BEGIN", b"COMMIT") else names[getattr(c, "func", c).__name__]
                    for c in commands)
        count[0] += 1
        if part and part[-1] == "SYNC":
            sent.append(list(part))
            sent.parts.append(count[0])
            part.clear()
            count[0] = 0
        return real(conn, pgconn, commands)

    monkeypatch.setattr(pipeline, "_communicate", spy)
    return sent
