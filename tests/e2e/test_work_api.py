"""The work REST API: tasks and alerts through Django's test client."""

import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from medflow.access.tokens import create_token
from medflow.eventstore.models import StoredEvent
from medflow.work.services import raise_alert
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user)[1]}")


@pytest.fixture
def api(doctor):
    return client_for(doctor)


@pytest.fixture
def nurse(system, clinic):
    return make_staff(system, clinic, "nurse_joy", "nurse")


def post(api, url, body=None, **headers):
    return api.post(url, body or {}, content_type="application/json", **headers)


def error(response, status):
    assert response.status_code == status, response.content
    return response.json()["error"]


def assign(api, **body):
    response = post(api, "/api/tasks", body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_assign_list_complete(api, doctor, nurse, registered):
    due = (timezone.now() + timedelta(hours=2)).isoformat()
    later = assign(api, assignee_id=nurse.pk, title="Chase results", due_at=due)
    first = assign(api, assignee_id=nurse.pk, title="Repeat BP", priority="urgent",
                   patient_id=str(registered))
    assign(api, assignee_id=doctor.pk, title="Sign letters")
    nurse_api = client_for(nurse)
    queue = nurse_api.get("/api/tasks").json()
    assert [t["id"] for t in queue["items"]] == [first, later] and queue["count"] == 2
    assert queue["items"][0]["patient_id"] == str(registered)
    assert [t["title"] for t in api.get("/api/tasks").json()["items"]] == ["Sign letters"]
    assert api.get("/api/tasks", {"assignee": nurse.pk}).json()["count"] == 2
    url = f"/api/tasks/{first}/complete"
    assert error(post(nurse_api, url, {"note": "done"}), 428)["code"] == "precondition_required"
    assert error(post(nurse_api, url, {"note": "done"}, HTTP_IF_MATCH="2"), 409)[
        "code"] == "version_conflict"
    done = post(nurse_api, url, {"note": "done"}, HTTP_IF_MATCH='"1"')
    assert done.status_code == 200 and done.json() == {"id": first, "version": 2}
    assert error(post(nurse_api, url, {}, HTTP_IF_MATCH="2"), 422)["code"] == "task_completed"
    completed = nurse_api.get("/api/tasks", {"status": "completed"}).json()["items"]
    assert [(t["id"], t["completion_note"], t["completed_by"]) for t in completed] == [
        (first, "done", nurse.pk)]
    read = nurse_api.get(f"/api/tasks/{first}")
    assert read.status_code == 200 and read["ETag"] == '"2"'
    assert nurse_api.get("/api/tasks", {"status": "all"}).json()["count"] == 2


def test_reassign(api, doctor, nurse):
    task_id = assign(api, assignee_id=nurse.pk, title="T")
    moved = post(api, f"/api/tasks/{task_id}/reassign", {"assignee_id": doctor.pk},
                 HTTP_IF_MATCH="1")
    assert moved.status_code == 200 and moved.json()["version"] == 2
    assert [t["id"] for t in api.get("/api/tasks").json()["items"]] == [task_id]
    assert error(post(api, f"/api/tasks/{task_id}/reassign", {"assignee_id": doctor.pk},
                      HTTP_IF_MATCH="2"), 422)["code"] == "no_change"


def test_invalid_input_names_the_field_and_writes_nothing(api, nurse):
    before = StoredEvent.objects.count()
    cases = [
        ({"title": "T"}, "assignee_id"),
        ({"assignee_id": nurse.pk}, "title"),
        ({"assignee_id": nurse.pk, "title": " "}, "title"),
        ({"assignee_id": nurse.pk, "title": "T", "priority": "asap"}, "priority"),
        ({"assignee_id": nurse.pk, "title": "T", "due_at": "tomorrow"}, "due_at"),
        ({"assignee_id": nurse.pk, "title": "T", "due_at": "2026-05-01T09:00:00"}, "due_at"),
        ({"assignee_id": nurse.pk, "title": "T", "owner": 1}, "owner"),
        ({"assignee_id": 999999, "title": "T"}, "assignee_id"),
    ]
    for body, field in cases:
        err = error(post(api, "/api/tasks", body), 422)
        assert err["field"] == field, (field, err)
    assert error(api.get("/api/tasks", {"status": "open"}), 422)["field"] == "status"
    assert error(api.get("/api/alerts", {"status": "open"}), 422)["field"] == "status"
    assert StoredEvent.objects.count() == before


def test_alerts_list_and_acknowledge(api, system, clinic, doctor, registered):
    ctx_alert = raise_alert(system, clinic_id=clinic.id, severity="warning", message="Fridge 9 C")
    critical = raise_alert(system, severity="critical", message="K 6.8",
                           patient_id=registered).aggregate_id
    listed = api.get("/api/alerts").json()
    assert [a["id"] for a in listed["items"]] == [str(critical), str(ctx_alert.aggregate_id)]
    assert api.get("/api/alerts", {"patient_id": str(registered)}).json()["count"] == 1
    url = f"/api/alerts/{critical}/acknowledge"
    assert error(post(api, url), 428)["code"] == "precondition_required"
    clerk = client_for(make_staff(system, clinic, "clerk", "receptionist"))
    assert error(post(clerk, url, HTTP_IF_MATCH="1"), 403)["code"] == "permission_denied"
    ok = post(api, url, {"note": "called"}, HTTP_IF_MATCH="1")
    assert ok.status_code == 200 and ok.json()["version"] == 2
    assert error(post(api, url, HTTP_IF_MATCH="2"), 422)["code"] == "alert_acknowledged"
    assert [a["id"] for a in api.get("/api/alerts").json()["items"]] == [
        str(ctx_alert.aggregate_id)]
    acked = api.get("/api/alerts", {"status": "acknowledged"}).json()["items"]
    assert [(a["acknowledged_by"], a["acknowledgement_note"]) for a in acked] == [
        (doctor.pk, "called")]


def test_foreign_clinic_tasks_and_alerts_are_404(api, system, other_clinic):
    far = make_staff(system, other_clinic, "dr_far", "doctor")
    far_api = client_for(far)
    task_id = assign(far_api, assignee_id=far.pk, title="Theirs")
    alert_id = raise_alert(system, clinic_id=other_clinic.id, severity="info",
                           message="M").aggregate_id
    before = StoredEvent.objects.count()
    for response in (
        api.get(f"/api/tasks/{task_id}"),
        post(api, f"/api/tasks/{task_id}/complete", HTTP_IF_MATCH="1"),
        post(api, f"/api/tasks/{task_id}/reassign", {"assignee_id": far.pk}, HTTP_IF_MATCH="1"),
        post(api, f"/api/alerts/{alert_id}/acknowledge", HTTP_IF_MATCH="1"),
        post(api, "/api/tasks", {"assignee_id": far.pk, "title": "T",
                                 "clinic_id": str(other_clinic.id)}),
        api.get(f"/api/tasks/{uuid.uuid4()}"),
    ):
        assert error(response, 404)["code"] == "not_found"
    assert StoredEvent.objects.count() == before
    assert api.get("/api/tasks", {"assignee": far.pk}).json()["count"] == 0
    assert api.get("/api/alerts").json()["count"] == 0


def test_idempotency_key_assigns_once(api, nurse):
    key = str(uuid.uuid4())
    body = {"assignee_id": nurse.pk, "title": "T"}
    first = post(api, "/api/tasks", body, HTTP_IDEMPOTENCY_KEY=key)
    again = post(api, "/api/tasks", body, HTTP_IDEMPOTENCY_KEY=key)
    assert again.status_code == 201 and again.json() == first.json()
    assert StoredEvent.objects.filter(event_type="TaskAssigned").count() == 1
