"""The patient timeline: every event about a patient, newest first, filterable, as of a time."""

import uuid

import pytest
from django.test import Client

from medflow.access.tokens import create_token
from medflow.patients.services import update_patient
from medflow.timeline.models import TimelineEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(doctor):
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_token(doctor)[1]}")


def test_timeline_newest_first_with_who_and_filters(api, doctor_ctx, registered):
    update_patient(doctor_ctx, registered, {"phone": "555 0100"}, expected_version=1)
    body = api.get(f"/api/patients/{registered}/timeline").json()
    assert body["count"] == 2
    assert [i["event_type"] for i in body["items"]] == ["PatientUpdated", "PatientRegistered"]
    assert body["items"][0]["who"] == "dr_house" and body["items"][0]["kind"] == "patient"
    assert body["items"][1]["summary"] == "Patient registered"
    first = body["items"][1]["recorded_at"]
    then = api.get(f"/api/patients/{registered}/timeline", {"as_of": first}).json()
    assert [i["event_type"] for i in then["items"]] == ["PatientRegistered"]
    assert api.get(f"/api/patients/{registered}/timeline", {"kind": "lab"}).json()["count"] == 0
    assert api.get(f"/api/patients/{registered}/timeline", {"limit": 1}).json()["items"][0][
        "event_type"] == "PatientUpdated"


def test_timeline_of_unknown_or_foreign_patient_is_404(api, system, other_clinic):
    from medflow.patients.services import register_patient

    foreign = register_patient(system, clinic_id=other_clinic.id, mrn="F1", given_names="A",
                               family_name="B", birth_date="2000-01-01")
    assert TimelineEntry.objects.filter(patient_id=foreign.aggregate_id).count() == 1
    for patient in (foreign.aggregate_id, uuid.uuid4()):
        response = api.get(f"/api/patients/{patient}/timeline")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_every_page_reports_the_total_of_all_matches(api, doctor_ctx, registered):
    for number in range(4):
        update_patient(doctor_ctx, registered, {"phone": f"555 010{number}"},
                       expected_version=number + 1)
    url = f"/api/patients/{registered}/timeline"
    pages = [api.get(url, {"limit": 2, "offset": offset}).json() for offset in (0, 2, 4, 6)]
    assert [p["count"] for p in pages] == [5, 5, 5, 5]
    assert [len(p["items"]) for p in pages] == [2, 2, 1, 0]
    versions = [i["version"] for p in pages for i in p["items"]]
    assert versions == [5, 4, 3, 2, 1]
    assert api.get(url, {"kind": "lab", "offset": 2}).json()["count"] == 0
    assert api.get(url, {"kind": "patient", "limit": 1}).json()["count"] == 5
