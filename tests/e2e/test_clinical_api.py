"""The clinical REST API through Django's test client: status codes, errors, roles, as_of."""

import uuid
from datetime import UTC, datetime

import pytest
from django.test import Client

from medflow.access.tokens import create_token
from medflow.eventstore.models import StoredEvent
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db

JSON = "application/json"
DX = {"code_system": "ICD-10", "code": "I10", "display": "Essential hypertension",
      "onset_date": "2025-06-01"}
RX = {"drug_code": "197361", "drug_name": "Amlodipine 5 MG Oral Tablet", "dose": "5 mg",
      "route": "oral", "frequency": "once daily", "reason": "hypertension"}


def client_for(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user)[1]}")


@pytest.fixture
def api(doctor):
    return client_for(doctor)


@pytest.fixture
def nurse_api(system, clinic):
    return client_for(make_staff(system, clinic, "nurse_joy", "nurse"))


def post(client, url, body=None, status=201, **headers):
    response = client.post(url, body or {}, content_type=JSON, **headers)
    assert response.status_code == status, response.content
    return response.json()


def error(response, status):
    assert response.status_code == status, response.content
    return response.json()["error"]


def test_encounter_with_vitals_then_ended(api, nurse_api, registered):
    started = post(nurse_api, f"/api/patients/{registered}/encounters", {"reason": "dizziness"})
    encounter = started["id"]
    assert started["version"] == 1
    vitals = post(nurse_api, f"/api/patients/{registered}/vitals",
                  {"encounter_id": encounter, "systolic": 100, "diastolic": 60, "heart_rate": 110})
    assert (vitals["id"], vitals["version"], vitals["stream"]) == (encounter, 2, "encounter")
    read = api.get(f"/api/encounters/{encounter}")
    assert read.status_code == 200 and read["ETag"] == '"2"'
    assert read.json()["vital_signs_count"] == 1 and read.json()["status"] == "in_progress"
    url = f"/api/encounters/{encounter}/end"
    assert error(nurse_api.post(url, {}, content_type=JSON), 428)["code"] == "precondition_required"
    assert error(nurse_api.post(url, {}, content_type=JSON, HTTP_IF_MATCH='"1"'), 409)[
        "code"] == "version_conflict"
    ended = post(nurse_api, url, {"disposition": "home"}, status=200, HTTP_IF_MATCH='"2"')
    assert ended["version"] == 3
    again = error(nurse_api.post(url, {}, content_type=JSON, HTTP_IF_MATCH='"3"'), 422)
    assert again["code"] == "encounter_ended"
    late = error(nurse_api.post(f"/api/patients/{registered}/vitals",
                                {"encounter_id": encounter, "heart_rate": 90}, content_type=JSON), 422)
    assert late["code"] == "encounter_ended"
    listed = api.get(f"/api/patients/{registered}/encounters").json()
    assert [(i["id"], i["status"]) for i in listed["items"]] == [(encounter, "finished")]


def test_vitals_series_latest_and_bounds(nurse_api, registered):
    url = f"/api/patients/{registered}/vitals"
    first = post(nurse_api, url, {"temperature_c": 38.4, "spo2": 95,
                                  "measured_at": "2026-01-10T08:00:00Z"})
    assert first["stream"] == "chart" and first["version"] == 1
    post(nurse_api, url, {"temperature_c": 37.1, "measured_at": "2026-01-10T20:00:00+02:00"})
    body = nurse_api.get(url).json()
    assert [i["temperature_c"] for i in body["items"]] == [38.4, 37.1]
    assert body["items"][0]["event_id"] == first["event_id"]
    assert body["latest"]["temperature_c"]["value"] == 37.1
    assert body["latest"]["spo2"] == {**body["latest"]["spo2"], "value": 95, "unit": "%"}
    before = StoredEvent.objects.count()
    for payload, field, message in (
        ({"heart_rate": 301}, "heart_rate", "heart_rate must be between 20 and 300 bpm"),
        ({"temperature_c": 98.6}, "temperature_c", "temperature_c must be between 10 and 46 °C"),
        ({"weight_kg": 0}, "weight_kg", "weight_kg must be between 0.2 and 650 kg"),
        ({"systolic": 80, "diastolic": 90}, "diastolic", "diastolic must be lower than systolic (mmHg)"),
        ({}, "vital_signs", None),
        ({"heart_rate": "fast"}, "heart_rate", None),
        ({"pulse": 70}, "pulse", None),
        ({"heart_rate": 70, "measured_at": "2026-01-10T08:00:00"}, "measured_at", None),
        ({"heart_rate": 70, "measured_at": "2999-01-01T00:00:00Z"}, "measured_at", None),
    ):
        err = error(nurse_api.post(url, payload, content_type=JSON), 422)
        assert err["field"] == field, (payload, err)
        if message:
            assert err["message"] == message
    assert StoredEvent.objects.count() == before


def test_vitals_as_of_and_idempotency_key(nurse_api, registered):
    url = f"/api/patients/{registered}/vitals"
    key = str(uuid.uuid4())
    first = post(nurse_api, url, {"heart_rate": 70}, HTTP_IDEMPOTENCY_KEY=key)
    again = post(nurse_api, url, {"heart_rate": 70}, HTTP_IDEMPOTENCY_KEY=key)
    assert again == first
    recorded_at = nurse_api.get(url).json()["items"][0]["recorded_at"]
    post(nurse_api, url, {"heart_rate": 90})
    then = nurse_api.get(url, {"as_of": recorded_at}).json()
    assert [i["heart_rate"] for i in then["items"]] == [70]
    assert then["latest"]["heart_rate"]["value"] == 70 and then["as_of"] is not None
    assert error(nurse_api.get(url, {"as_of": "2026-01-01T00:00:00"}), 422)["field"] == "as_of"


def test_diagnoses_lifecycle_and_validation(api, registered):
    created = post(api, f"/api/patients/{registered}/diagnoses", DX)
    diagnosis = created["id"]
    url = f"/api/diagnoses/{diagnosis}"
    assert api.get(url).json()["clinical_status"] == "active"
    post(api, f"{url}/status", {"clinical_status": "remission"}, status=200, HTTP_IF_MATCH="1")
    post(api, f"{url}/resolve", {"resolved_on": "2026-01-02", "note": "controlled"}, status=200,
         HTTP_IF_MATCH="2")
    body = api.get(f"/api/patients/{registered}/diagnoses").json()
    assert [(i["clinical_status"], i["resolved_on"]) for i in body["items"]] == [
        ("resolved", "2026-01-02")]
    active = api.get(f"/api/patients/{registered}/diagnoses", {"status": "active"}).json()
    assert active["count"] == 0
    before = StoredEvent.objects.count()
    for payload, field in (
        ({**DX, "code": "hypertension"}, "code"),
        ({**DX, "code_system": "SNOMED CT"}, "code"),
        ({**DX, "code_system": "ICPC"}, "code_system"),
        ({**DX, "clinical_status": "cured"}, "clinical_status"),
        ({**DX, "onset_date": "2999-01-01"}, "onset_date"),
        ({k: v for k, v in DX.items() if k != "display"}, "display"),
        ({**DX, "severity": "mild"}, "severity"),
    ):
        err = error(api.post(f"/api/patients/{registered}/diagnoses", payload, content_type=JSON), 422)
        assert err["field"] == field, (payload, err)
    assert StoredEvent.objects.count() == before


def test_prescriptions_pending_approval_and_discontinue(api, system, clinic, registered):
    other_doctor = client_for(make_staff(system, clinic, "dr_cuddy", "doctor"))
    created = post(api, f"/api/patients/{registered}/prescriptions", {**RX, "needs_approval": True})
    url = f"/api/prescriptions/{created['id']}"
    assert api.get(url).json()["status"] == "pending"
    own = error(api.post(f"{url}/approve", content_type=JSON, HTTP_IF_MATCH="1"), 422)
    assert own["code"] == "self_approval"
    post(other_doctor, f"{url}/approve", status=200, HTTP_IF_MATCH="1")
    twice = error(other_doctor.post(f"{url}/approve", content_type=JSON, HTTP_IF_MATCH="2"), 422)
    assert twice["code"] == "already_approved"
    no_reason = error(api.post(f"{url}/discontinue", {}, content_type=JSON, HTTP_IF_MATCH="2"), 422)
    assert no_reason["field"] == "reason"
    post(api, f"{url}/discontinue", {"reason": "ankle oedema"}, status=200, HTTP_IF_MATCH="2")
    listed = api.get(f"/api/patients/{registered}/prescriptions").json()
    assert [(i["status"], i["discontinued_reason"]) for i in listed["items"]] == [
        ("discontinued", "ankle oedema")]
    err = error(api.post(f"/api/patients/{registered}/prescriptions", {**RX, "route": "by mouth"},
                         content_type=JSON), 422)
    assert err["field"] == "route"


def test_notes_draft_patch_sign_amend(api, nurse_api, registered):
    created = post(nurse_api, f"/api/patients/{registered}/notes", {"subjective": "Headache"})
    url = f"/api/notes/{created['id']}"
    assert error(nurse_api.patch(url, {"plan": "rest"}, content_type=JSON), 428)[
        "code"] == "precondition_required"
    patched = nurse_api.patch(url, {"plan": "Paracetamol"}, content_type=JSON, HTTP_IF_MATCH="1")
    assert patched.status_code == 200 and patched["ETag"] == '"2"'
    assert error(nurse_api.post(f"{url}/sign", content_type=JSON, HTTP_IF_MATCH="2"), 403)[
        "code"] == "permission_denied"
    post(api, f"{url}/sign", status=200, HTTP_IF_MATCH="2")
    signed_recorded_at = api.get(url).json()["updated_at"]
    signed = error(api.patch(url, {"plan": "Ibuprofen"}, content_type=JSON, HTTP_IF_MATCH="3"), 422)
    assert signed["code"] == "note_signed"
    no_reason = error(api.post(f"{url}/amend", {"amendment": "BP 150/90"}, content_type=JSON,
                               HTTP_IF_MATCH="3"), 422)
    assert no_reason["field"] == "reason"
    post(api, f"{url}/amend", {"amendment": "BP 150/90", "reason": "omitted"}, status=200,
         HTTP_IF_MATCH="3")
    note = api.get(url).json()
    assert (note["status"], note["plan"], note["amendments"][0]["reason"]) == (
        "amended", "Paracetamol", "omitted")
    signed_then = api.get(url, {"as_of": signed_recorded_at}).json()
    assert (signed_then["status"], signed_then["version"], signed_then["amendments"]) == ("signed", 3, [])
    drafts = api.get(f"/api/patients/{registered}/notes", {"status": "draft"}).json()
    assert drafts["count"] == 0


def test_chart_with_as_of(api, nurse_api, registered):
    post(nurse_api, f"/api/patients/{registered}/vitals", {"weight_kg": 61.5})
    first = api.get(f"/api/patients/{registered}/vitals").json()["items"][0]["recorded_at"]
    post(api, f"/api/patients/{registered}/diagnoses", DX)
    post(api, f"/api/patients/{registered}/prescriptions", RX)
    chart = api.get(f"/api/patients/{registered}/chart").json()
    assert chart["patient"]["family_name"] == "Lovelace"
    assert [p["code"] for p in chart["active_problems"]] == ["I10"]
    assert [m["drug_code"] for m in chart["medications"]] == ["197361"]
    assert chart["latest_vitals"]["weight_kg"]["value"] == 61.5
    then = api.get(f"/api/patients/{registered}/chart", {"as_of": first}).json()
    assert (then["active_problems"], then["medications"]) == ([], [])
    assert then["latest_vitals"]["weight_kg"]["value"] == 61.5


def test_roles_receptionist_forbidden_admin_reads_only(system, clinic, registered, api):
    note = post(api, f"/api/patients/{registered}/notes", {"plan": "x"})["id"]
    receptionist = client_for(make_staff(system, clinic, "front_desk", "receptionist"))
    admin = client_for(make_staff(system, clinic, "root", "admin"))
    before = StoredEvent.objects.count()
    reads = [f"/api/patients/{registered}/{what}"
             for what in ("chart", "vitals", "diagnoses", "prescriptions", "notes", "encounters")]
    writes = [
        (f"/api/patients/{registered}/encounters", {}),
        (f"/api/patients/{registered}/vitals", {"heart_rate": 70}),
        (f"/api/patients/{registered}/diagnoses", DX),
        (f"/api/patients/{registered}/prescriptions", RX),
        (f"/api/patients/{registered}/notes", {"plan": "x"}),
        (f"/api/notes/{note}/sign", {}),
    ]
    for url in [*reads, f"/api/notes/{note}"]:
        assert error(receptionist.get(url), 403)["code"] == "permission_denied"
        assert admin.get(url).status_code == 200
    for client in (receptionist, admin):
        for url, body in writes:
            response = client.post(url, body, content_type=JSON, HTTP_IF_MATCH="1")
            assert error(response, 403)["code"] == "permission_denied", url
    assert StoredEvent.objects.count() == before


def test_foreign_and_unknown_records_are_404(api, system, other_clinic, patient_fields):
    from medflow.clinical.services import add_diagnosis, draft_note
    from medflow.patients.services import register_patient

    foreign = register_patient(system, clinic_id=other_clinic.id, **patient_fields).aggregate_id
    diagnosis = add_diagnosis(system, patient_id=foreign, **{**DX, "onset_date": None}).aggregate_id
    note = draft_note(system, patient_id=foreign, plan="x").aggregate_id
    before = StoredEvent.objects.count()
    for patient in (foreign, uuid.uuid4()):
        for what in ("chart", "vitals", "diagnoses", "notes"):
            assert error(api.get(f"/api/patients/{patient}/{what}"), 404)["code"] == "not_found"
        assert error(api.post(f"/api/patients/{patient}/vitals", {"heart_rate": 70},
                              content_type=JSON), 404)["code"] == "not_found"
    for url in (f"/api/diagnoses/{diagnosis}", f"/api/notes/{note}", f"/api/notes/{uuid.uuid4()}"):
        assert error(api.get(url), 404)["code"] == "not_found"
    assert error(api.post(f"/api/notes/{note}/sign", content_type=JSON, HTTP_IF_MATCH="1"), 404)[
        "code"] == "not_found"
    assert error(api.post(f"/api/diagnoses/{diagnosis}/resolve", {}, content_type=JSON,
                          HTTP_IF_MATCH="1"), 404)["code"] == "not_found"
    assert StoredEvent.objects.count() == before


def test_timeline_shows_clinical_events_at_their_clinical_time(api, nurse_api, registered):
    post(nurse_api, f"/api/patients/{registered}/vitals",
         {"systolic": 120, "diastolic": 80, "measured_at": "2026-01-10T08:00:00Z"})
    timeline = api.get(f"/api/patients/{registered}/timeline", {"kind": "vitals"}).json()
    assert [(i["summary"], datetime.fromisoformat(i["occurred_at"])) for i in timeline["items"]] == [
        ("BP 120/80 mmHg", datetime(2026, 1, 10, 8, tzinfo=UTC))]
