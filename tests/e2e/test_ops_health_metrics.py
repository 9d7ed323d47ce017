"""/health and /metrics: what they report, when health fails, who may read metrics."""

import socket
import uuid

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from medflow.access.tokens import create_token
from medflow.eventstore import store
from medflow.eventstore.cache import cache
from medflow.projections import runner
from medflow.projections.catalog import all_projections

pytestmark = pytest.mark.django_db

LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


def scrape(client=None, **extra) -> dict:
    """Return {(name, labels): value} of every sample /metrics shows."""
    response = (client or Client()).get("/metrics", **{**LOOPBACK, **extra})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_health_reports_each_check_and_leaks_nothing(registered):
    response = Client().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "projections"}  # no broker configured
    assert all(check["ok"] for check in body["checks"].values())
    assert "Lovelace" not in response.content.decode() and "MRN-1" not in response.content.decode()


def test_health_is_503_when_the_cache_fails_and_hides_the_error(monkeypatch):
    from medflow.ops import health

    def broken(*args, **kwargs):
        raise ConnectionError("redis at secret-host:6379 refused")

    monkeypatch.setattr(health.django_cache, "set", broken)
    response = Client().get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["cache"] == {"ok": False, "error": "ConnectionError",
                                       "ms": body["checks"]["cache"]["ms"]}
    assert body["checks"]["database"]["ok"] is True
    assert "secret-host" not in response.content.decode()


def test_health_is_503_when_the_database_is_down(monkeypatch):
    from medflow.ops import health

    def down():
        raise RuntimeError("no database")

    monkeypatch.setattr(health, "check_database", down)
    body = Client().get("/health")
    assert body.status_code == 503
    assert body.json()["checks"]["database"]["ok"] is False
    assert body.json()["checks"]["projections"]["ok"] is False


def test_health_checks_the_broker_when_one_is_configured(settings):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        settings.BROKER_URL = f"amqp://guest:guest@127.0.0.1:{port}/"
        ok = Client().get("/health")
        assert ok.status_code == 200 and ok.json()["checks"]["broker"]["ok"] is True
    finally:
        listener.close()
    refused = Client().get("/health")
    assert refused.status_code == 503
    assert refused.json()["checks"]["broker"]["ok"] is False
    assert "guest" not in refused.content.decode()


def test_health_fails_when_a_projection_lags_beyond_the_limit(settings, monkeypatch, registered):
    settings.MEDFLOW_HEALTH_MAX_LAG_SECONDS = 60
    lagging = [runner.Status("event_counts", "catch-up", 0, 5, 120.0, "")]
    monkeypatch.setattr(runner, "status", lambda: lagging)
    response = Client().get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["projections"]["lag_seconds"] == 120.0
    monkeypatch.undo()
    settings.MEDFLOW_HEALTH_MAX_LAG_SECONDS = 60
    for projection in all_projections().values():
        if projection.kind == "catch-up":
            runner.catch_up(projection)
    response = Client().get("/health")
    assert response.status_code == 200
    assert response.json()["checks"]["projections"]["lag_events"] == 0


def test_metrics_count_appends_events_by_type_size_lag_and_cache(doctor_ctx, clinic):
    from medflow.patients.services import register_patient

    before = scrape()
    appends_before = before.get(("medflow_appends_total", ()), 0)
    patients_before = before.get(("medflow_events_appended_total", (("aggregate_type", "Patient"),)), 0)
    latency_before = before.get(("medflow_append_seconds_count", ()), 0)
    register_patient(doctor_ctx, clinic_id=clinic.id, mrn="M-77", given_names="Mary",
                     family_name="Shelley", birth_date="1797-08-30", sex="female")
    lag = scrape()
    assert lag[("medflow_appends_total", ())] == appends_before + 1
    assert lag[("medflow_events_appended_total", (("aggregate_type", "Patient"),))] == patients_before + 1
    assert lag[("medflow_append_seconds_count", ())] == latency_before + 1
    assert lag[("medflow_projection_lag_events", (("projection", "event_counts"),))] >= 1
    assert lag[("medflow_event_store_last_position", ())] == store.last_position()
    assert ("medflow_event_store_rows", ()) in lag and ("medflow_event_store_bytes", ()) in lag

    runner.catch_up(all_projections()["event_counts"])
    cache.set("ops-test", 1)
    cache.get("ops-test")
    cache.get("ops-test-missing")
    after = scrape()
    assert after[("medflow_events_by_type", (("event_type", "PatientRegistered"),))] >= 1
    assert after[("medflow_projection_lag_events", (("projection", "event_counts"),))] == 0
    assert after[("medflow_cache_hits", ())] >= 1 and after[("medflow_cache_misses", ())] >= 1
    assert 0 < after[("medflow_cache_hit_rate", ())] < 1
    assert "Shelley" not in str(after)


def test_metrics_count_failed_commands_by_code(doctor):
    _, raw = create_token(doctor)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    key = ("medflow_failed_commands_total", (("code", "not_found"),))
    before = scrape().get(key, 0)
    assert api.get(f"/api/patients/{uuid.uuid4()}").status_code == 404
    assert scrape()[key] == before + 1


def test_metrics_are_refused_off_loopback_and_need_the_token_when_one_is_set(settings):
    assert Client().get("/metrics", REMOTE_ADDR="10.0.0.9").status_code == 403
    settings.MEDFLOW_METRICS_TOKEN = "s3cret-token"
    assert Client().get("/metrics", **LOOPBACK).status_code == 403
    assert Client().get("/metrics", REMOTE_ADDR="10.0.0.9",
                        HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
