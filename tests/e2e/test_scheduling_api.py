"""The scheduling REST API through Django's test client: codes, error shape, scope, roles."""

import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from medflow.access.tokens import create_token
from medflow.eventstore import store
from medflow.eventstore.models import StoredEvent
from medflow.patients.services import register_patient
from medflow.scheduling import process
from medflow.scheduling.services import schedule_appointment
from tests.conftest import make_staff
from tests.integration.test_scheduling_support import (  # noqa: F401  (fixtures)
    clinical_or_stand_in_fixture,
    receptionist_fixture,
    tomorrow_at,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clinical_or_stand_in")]


def client_for(user) -> Client:
    _, raw = create_token(user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


@pytest.fixture
def api(doctor):
    return client_for(doctor)


@pytest.fixture
def front_desk(receptionist):
    return client_for(receptionist)


def post(api, url, body=None, **headers):
    return api.post(url, body if body is not None else {}, content_type="application/json",
                    **headers)


def error(response, status):
    assert response.status_code == status, response.content
    return response.json()["error"]


@pytest.fixture
def body(doctor, registered):
    return {"patient_id": str(registered), "provider_id": doctor.pk,
            "starts_at": tomorrow_at(9).isoformat(), "duration_minutes": 30,
            "kind": "consultation", "reason": "cough"}


def create(api, body, **changes) -> str:
    response = post(api, "/api/appointments", {**body, **changes})
    assert response.status_code == 201, response.json()
    assert response.json()["version"] == 1
    return response.json()["id"]


def test_book_read_and_list(api, body, registered):
    appointment_id = create(api, body)
    response = api.get(f"/api/appointments/{appointment_id}")
    assert response.status_code == 200 and response["ETag"] == '"1"'
    data = response.json()
    assert (data["status"], data["kind"], data["reason"], data["version"]) == (
        "scheduled", "consultation", "cough", 1)
    assert data["starts_at"].startswith(tomorrow_at(9).strftime("%Y-%m-%dT%H:%M"))
    listed = api.get(f"/api/patients/{registered}/appointments").json()
    assert listed["count"] == 1 and listed["items"][0]["id"] == appointment_id


def test_a_receptionist_books_checks_in_but_does_not_complete(front_desk, api, body):
    appointment_id = create(front_desk, body, starts_at=timezone.now().isoformat())
    url = f"/api/appointments/{appointment_id}"
    assert post(front_desk, f"{url}/check-in", HTTP_IF_MATCH='"1"').status_code == 200
    before = StoredEvent.objects.count()
    assert error(post(front_desk, f"{url}/complete", HTTP_IF_MATCH='"2"'),
                 403)["code"] == "permission_denied"
    assert StoredEvent.objects.count() == before
    done = post(api, f"{url}/complete", HTTP_IF_MATCH='"2"')
    assert done.status_code == 200 and done.json()["version"] == 3 and done["ETag"] == '"3"'
    assert api.get(url).json()["status"] == "completed"


def test_check_in_starts_an_encounter(api, body):
    appointment_id = create(api, body, starts_at=timezone.now().isoformat())
    assert post(api, f"/api/appointments/{appointment_id}/check-in",
                HTTP_IF_MATCH="1").status_code == 200
    checked_in = store.load(uuid.UUID(appointment_id))[-1]
    assert store.current_version(process.encounter_id_for(checked_in)) >= 1


def test_reschedule_cancel_and_the_state_machine(api, body):
    appointment_id = create(api, body)
    url = f"/api/appointments/{appointment_id}"
    moved = post(api, f"{url}/reschedule", {"starts_at": tomorrow_at(11).isoformat(),
                                            "reason": "doctor late"}, HTTP_IF_MATCH='"1"')
    assert moved.status_code == 200 and moved.json()["version"] == 2
    assert api.get(url).json()["ends_at"].startswith(tomorrow_at(11, 30).strftime("%Y-%m-%dT%H:%M"))
    assert post(api, f"{url}/cancel", {"reason": "flu", "by": "patient"},
                HTTP_IF_MATCH='"2"').status_code == 200
    data = api.get(url).json()
    assert (data["status"], data["cancel_reason"], data["cancelled_by"]) == (
        "cancelled", "flu", "patient")
    err = error(post(api, f"{url}/check-in", HTTP_IF_MATCH='"3"'), 422)
    assert (err["code"], err["field"]) == ("invalid_transition", "status")


def test_no_show(api, doctor, doctor_ctx, registered):
    now = timezone.now()
    missed = schedule_appointment(doctor_ctx, patient_id=registered, provider_id=doctor.pk,
                                  starts_at=now - timedelta(minutes=30), duration_minutes=20,
                                  now=now - timedelta(hours=1))
    url = f"/api/appointments/{missed.aggregate_id}"
    assert post(api, f"{url}/no-show", HTTP_IF_MATCH='"1"').status_code == 200
    assert api.get(url).json()["status"] == "no_show"
    upcoming = create(api, {"patient_id": str(registered), "provider_id": doctor.pk,
                            "starts_at": tomorrow_at(9).isoformat(), "duration_minutes": 30})
    err = error(post(api, f"/api/appointments/{upcoming}/no-show", HTTP_IF_MATCH='"1"'), 422)
    assert err["code"] == "not_started"


@pytest.mark.parametrize("action", ["reschedule", "cancel", "check-in", "complete", "no-show"])
def test_state_changes_need_if_match_and_refuse_stale_versions(api, body, action):
    appointment_id = create(api, body)
    url = f"/api/appointments/{appointment_id}/{action}"
    payload = {"starts_at": tomorrow_at(12).isoformat()} if action == "reschedule" else {}
    before = StoredEvent.objects.count()
    assert error(post(api, url, payload), 428)["code"] == "precondition_required"
    stale = error(post(api, url, payload, HTTP_IF_MATCH='"7"'), 409)
    assert stale["code"] == "version_conflict"
    assert StoredEvent.objects.count() == before


def test_double_booking_is_409_slot_taken(api, body, doctor_ctx, clinic, patient_fields):
    create(api, body)
    other = register_patient(doctor_ctx, clinic_id=clinic.id, **{**patient_fields, "mrn": "M2"})
    before = StoredEvent.objects.count()
    response = post(api, "/api/appointments", {**body, "patient_id": str(other.aggregate_id),
                                               "starts_at": tomorrow_at(9, 15).isoformat()})
    err = error(response, 409)
    assert (err["code"], err["field"]) == ("slot_taken", "starts_at")
    assert StoredEvent.objects.count() == before


def test_invalid_input_names_the_field_and_writes_nothing(api, body, receptionist):
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    cases = [
        ({**body, "starts_at": "2030-01-01T09:00:00"}, "starts_at"),
        ({**body, "starts_at": "soon"}, "starts_at"),
        ({**body, "starts_at": past}, "starts_at"),
        ({k: v for k, v in body.items() if k != "duration_minutes"}, "ends_at"),
        ({**body, "ends_at": tomorrow_at(10).isoformat()}, "duration_minutes"),
        ({**body, "duration_minutes": 0}, "duration_minutes"),
        ({**body, "duration_minutes": None, "ends_at": tomorrow_at(8).isoformat()}, "ends_at"),
        ({**body, "kind": "astrology"}, "kind"),
        ({**body, "provider_id": receptionist.pk}, "provider_id"),
        ({**body, "provider_id": "dr"}, "provider_id"),
        ({k: v for k, v in body.items() if k != "patient_id"}, "patient_id"),
        ({**body, "room": "3"}, "room"),
    ]
    before = StoredEvent.objects.count()
    for payload, field in cases:
        err = error(post(api, "/api/appointments", payload), 422)
        assert err["field"] == field, (field, err)
        assert field in err["message"], err
    appointment_id = create(api, body)
    err = error(post(api, f"/api/appointments/{appointment_id}/cancel", {"by": "system"},
                     HTTP_IF_MATCH="1"), 422)
    assert err["field"] == "by"
    err = error(post(api, f"/api/appointments/{appointment_id}/check-in",
                     {"at": (timezone.now() + timedelta(hours=1)).isoformat()},
                     HTTP_IF_MATCH="1"), 422)
    assert err["field"] == "at"
    assert StoredEvent.objects.count() == before + 1


def test_unknown_and_foreign_appointments_are_404(api, body, system, other_clinic):
    assert error(api.get(f"/api/appointments/{uuid.uuid4()}"), 404)["code"] == "not_found"
    stranger = make_staff(system, other_clinic, "dr_elsewhere", "doctor")
    foreign_patient = register_patient(system, clinic_id=other_clinic.id, mrn="F1",
                                       given_names="Far", family_name="Away",
                                       birth_date="1970-01-01").aggregate_id
    foreign = schedule_appointment(system, patient_id=foreign_patient, provider_id=stranger.pk,
                                   starts_at=tomorrow_at(9), duration_minutes=30).aggregate_id
    url = f"/api/appointments/{foreign}"
    before = StoredEvent.objects.count()
    for response in (
        api.get(url),
        api.get(url, {"as_of": timezone.now().isoformat()}),
        api.get(f"/api/patients/{foreign_patient}/appointments"),
        post(api, "/api/appointments", {**body, "patient_id": str(foreign_patient),
                                        "provider_id": stranger.pk}),
        post(api, f"{url}/reschedule", {"starts_at": tomorrow_at(10).isoformat()},
             HTTP_IF_MATCH="1"),
        post(api, f"{url}/cancel", HTTP_IF_MATCH="1"),
        post(api, f"{url}/check-in", HTTP_IF_MATCH="1"),
        post(api, f"{url}/no-show", HTTP_IF_MATCH="1"),
    ):
        assert error(response, 404)["code"] == "not_found"
    assert StoredEvent.objects.count() == before
    day = api.get(f"/api/providers/{stranger.pk}/day", {"date": tomorrow_at(9).date()}).json()
    assert day["count"] == 0


def test_as_of_shows_the_past(api, body, registered):
    appointment_id = create(api, body)
    first = StoredEvent.objects.get(aggregate_id=appointment_id).timestamp.isoformat()
    post(api, f"/api/appointments/{appointment_id}/reschedule",
         {"starts_at": tomorrow_at(13).isoformat()}, HTTP_IF_MATCH="1")
    then = api.get(f"/api/appointments/{appointment_id}", {"as_of": first}).json()
    assert then["version"] == 1 and then["as_of"] is not None
    assert then["starts_at"].startswith(tomorrow_at(9).strftime("%Y-%m-%dT%H:%M"))
    listed = api.get(f"/api/patients/{registered}/appointments", {"as_of": first}).json()
    assert [i["version"] for i in listed["items"]] == [1]
    assert listed["items"][0]["starts_at"] == then["starts_at"]
    assert api.get(f"/api/patients/{registered}/appointments",
                   {"as_of": "2000-01-01T00:00:00Z"}).json()["count"] == 0
    for url in (f"/api/appointments/{appointment_id}", f"/api/patients/{registered}/appointments"):
        assert error(api.get(url, {"as_of": "2030-01-01T00:00:00"}), 422)["field"] == "as_of"
    assert error(api.get(f"/api/appointments/{appointment_id}", {"as_of": "2000-01-01T00:00:00Z"}),
                 404)["field"] == "as_of"


def test_the_doctors_day(api, body, doctor, doctor_ctx, clinic, patient_fields):
    other = register_patient(doctor_ctx, clinic_id=clinic.id, **{
        **patient_fields, "mrn": "M2", "given_names": "Charles", "family_name": "Babbage"})
    create(api, body, patient_id=str(other.aggregate_id), starts_at=tomorrow_at(14).isoformat())
    create(api, body)
    url = f"/api/providers/{doctor.pk}/day"
    day = api.get(url, {"date": tomorrow_at(9).date().isoformat()}).json()
    assert (day["provider_id"], day["time_zone"], day["count"]) == (doctor.pk, "UTC", 2)
    assert [(i["patient"]["given_names"], i["patient"]["family_name"]) for i in day["items"]] == [
        ("Ada", "Lovelace"), ("Charles", "Babbage")]
    assert day["items"][0]["patient"]["mrn"] == "MRN-1"
    auckland = api.get(url, {"date": tomorrow_at(9).date().isoformat(),
                             "tz": "Pacific/Auckland"}).json()
    assert [i["patient"]["family_name"] for i in auckland["items"]] == ["Lovelace"]
    assert error(api.get(url, {"date": "2026-13-01"}), 422)["field"] == "date"
    assert error(api.get(url), 422)["field"] == "date"
    assert error(api.get(url, {"date": "2026-11-23", "tz": "Mars/Olympus"}), 422)["field"] == "tz"


def test_idempotency_key_books_once(api, body):
    key = str(uuid.uuid4())
    first = post(api, "/api/appointments", body, HTTP_IDEMPOTENCY_KEY=key)
    again = post(api, "/api/appointments", body, HTTP_IDEMPOTENCY_KEY=key)
    assert again.status_code == 201 and again.json() == first.json()
    assert StoredEvent.objects.filter(event_type="AppointmentScheduled").count() == 1


def test_appointments_show_on_the_timeline(api, body, registered):
    create(api, body)
    timeline = api.get(f"/api/patients/{registered}/timeline", {"kind": "appointment"}).json()
    assert timeline["count"] == 1
    assert timeline["items"][0]["summary"].startswith("Appointment (consultation) booked for")


def test_openapi_lists_the_endpoints(db):
    paths = Client().get("/api/openapi.json").json()["paths"]
    for path in ("/api/appointments", "/api/appointments/{appointment_id}/check-in",
                 "/api/patients/{patient_id}/appointments", "/api/providers/{provider_id}/day"):
        assert path in paths
