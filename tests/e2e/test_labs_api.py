"""The labs REST API through Django's test client: codes, If-Match, errors, scope, as_of."""

import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from medflow.access.tokens import create_token
from medflow.context import Context
from medflow.eventstore.models import StoredEvent
from medflow.patients.services import register_patient
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db

ORDER = {"tests": [{"loinc_code": "2823-3", "display": "Potassium"},
                   {"loinc_code": "2345-7", "display": "Glucose"}],
         "priority": "stat", "reason": "weakness"}


def client_for(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user)[1]}")


@pytest.fixture
def api(doctor):
    return client_for(doctor)


def post(api, url, body=None, **headers):
    return api.post(url, body or {}, content_type="application/json", **headers)


def error(response, status):
    assert response.status_code == status, response.content
    return response.json()["error"]


def potassium(value=4.2, **changes):
    taken = (timezone.now() - timedelta(hours=2)).isoformat()
    return {"loinc_code": "2823-3", "display": "Potassium", "value": value, "unit": "mmol/L",
            "reference_low": 3.5, "reference_high": 5.1, "effective_at": taken, **changes}


def place(api, patient_id):
    response = post(api, f"/api/patients/{patient_id}/lab-orders", ORDER)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def record(api, order_id, body, **headers):
    response = post(api, f"/api/lab-orders/{order_id}/results", body, **headers)
    assert response.status_code == 201, response.content
    return response.json()


def test_order_record_correct_cancel_round_trip(api, registered):
    order_id = place(api, registered)
    orders = api.get(f"/api/patients/{registered}/lab-orders").json()
    assert orders["count"] == 1
    assert (orders["items"][0]["id"], orders["items"][0]["status"]) == (order_id, "placed")
    written = record(api, order_id, potassium(5.6))
    assert (written["order_id"], written["version"]) == (order_id, 2)
    result_id = written["id"]
    url = f"/api/lab-orders/{order_id}/results/{result_id}"
    assert error(post(api, f"{url}/correct", {"value": 4.4, "reason": "typo"}), 428)[
        "code"] == "precondition_required"
    stale = post(api, f"{url}/correct", {"value": 4.4, "reason": "typo"}, HTTP_IF_MATCH='"1"')
    assert error(stale, 409)["code"] == "version_conflict" and stale["ETag"] == '"2"'
    fixed = post(api, f"{url}/correct", {"value": 4.4, "reason": "typo"}, HTTP_IF_MATCH='"2"')
    assert fixed.status_code == 200 and fixed.json()["version"] == 3
    detail = api.get(f"/api/lab-orders/{order_id}")
    assert detail["ETag"] == '"3"'
    body = detail.json()
    assert (body["status"], body["result_count"]) == ("resulted", 1)
    assert [(r["value"], r["abnormal_flag"], r["status"]) for r in body["results"]] == [
        (4.4, "N", "corrected")]
    assert error(post(api, f"/api/lab-orders/{order_id}/cancel", {"reason": "x"},
                      HTTP_IF_MATCH="3"), 422)["code"] == "order_has_results"
    cancelled = post(api, f"{url}/cancel", {"reason": "wrong patient"}, HTTP_IF_MATCH="3")
    assert cancelled.status_code == 200 and cancelled.json()["version"] == 4
    assert error(post(api, f"{url}/cancel", {"reason": "again"}, HTTP_IF_MATCH="4"), 422)[
        "code"] == "result_cancelled"
    series = api.get(f"/api/patients/{registered}/lab-results").json()
    assert series["count"] == 0
    everything = api.get(f"/api/patients/{registered}/lab-results",
                         {"include_cancelled": "true"}).json()
    assert [r["status"] for r in everything["items"]] == ["cancelled"]
    done = post(api, f"/api/lab-orders/{order_id}/cancel", {"reason": "not needed"},
                HTTP_IF_MATCH="4")
    assert done.status_code == 200 and done.json() == {"id": order_id, "version": 5}
    assert error(post(api, f"/api/lab-orders/{order_id}/results", potassium()), 422)[
        "code"] == "order_cancelled"


def test_series_by_loinc_over_time_and_as_of(api, registered):
    order_id = place(api, registered)
    now = timezone.now()
    for hours, value in ((48, 3.9), (24, 4.8)):
        record(api, order_id, potassium(value, effective_at=(now - timedelta(hours=hours))
                                        .isoformat()))
    glucose = record(api, order_id, {"loinc_code": "2345-7", "display": "Glucose",
                                     "value": 101.0, "unit": "mg/dL",
                                     "effective_at": now.isoformat()})
    series = api.get(f"/api/patients/{registered}/lab-results", {"loinc": "2823-3"}).json()
    assert [r["value"] for r in series["items"]] == [3.9, 4.8]
    assert series["items"][0]["recorded_at"] and series["items"][0]["order_id"] == order_id
    first_recorded = series["items"][0]["recorded_at"]
    post(api, f"/api/lab-orders/{order_id}/results/{glucose['id']}/correct",
         {"value": 99.0, "reason": "recalibrated"}, HTTP_IF_MATCH=str(glucose["version"]))
    then = api.get(f"/api/patients/{registered}/lab-results", {"as_of": first_recorded}).json()
    assert [r["value"] for r in then["items"]] == [3.9]
    assert then["as_of"] is not None
    at_glucose = StoredEvent.objects.get(aggregate_id=order_id, version=4).timestamp
    before_fix = api.get(f"/api/patients/{registered}/lab-results",
                         {"loinc": "2345-7", "as_of": at_glucose.isoformat()}).json()
    assert [(r["value"], r["status"]) for r in before_fix["items"]] == [(101.0, "final")]
    assert [(r["value"], r["status"]) for r in api.get(
        f"/api/patients/{registered}/lab-results", {"loinc": "2345-7"}).json()["items"]] == [
        (99.0, "corrected")]
    orders_then = api.get(f"/api/patients/{registered}/lab-orders",
                          {"as_of": first_recorded}).json()
    assert [(o["version"], o["result_count"]) for o in orders_then["items"]] == [(2, 1)]
    assert error(api.get(f"/api/patients/{registered}/lab-results",
                         {"as_of": "2026-01-01T00:00:00"}), 422)["field"] == "as_of"
    assert error(api.get(f"/api/patients/{registered}/lab-results", {"loinc": "K"}), 422)[
        "field"] == "loinc"


def test_invalid_input_names_the_field_and_writes_nothing(api, registered):
    order_id = place(api, registered)
    before = StoredEvent.objects.count()
    cases = [
        (f"/api/patients/{registered}/lab-orders", {**ORDER, "tests": []}, "tests"),
        (f"/api/patients/{registered}/lab-orders", {**ORDER, "priority": "asap"}, "priority"),
        (f"/api/patients/{registered}/lab-orders",
         {**ORDER, "tests": [{"loinc_code": "2823-4", "display": "K"}]}, "tests.0.loinc_code"),
        (f"/api/patients/{registered}/lab-orders", {**ORDER, "urgent": True}, "urgent"),
        (f"/api/lab-orders/{order_id}/results", potassium("high"), "value"),
        (f"/api/lab-orders/{order_id}/results", potassium(None), "value"),
        (f"/api/lab-orders/{order_id}/results", potassium(loinc_code="K+"), "loinc_code"),
        (f"/api/lab-orders/{order_id}/results", potassium(abnormal_flag="HIGH"), "abnormal_flag"),
        (f"/api/lab-orders/{order_id}/results", potassium(reference_high=3.0), "reference_high"),
        (f"/api/lab-orders/{order_id}/results", potassium(effective_at="2026-01-01T08:00:00"),
         "effective_at"),
        (f"/api/lab-orders/{order_id}/results",
         potassium(effective_at=(timezone.now() + timedelta(days=1)).isoformat()), "effective_at"),
        (f"/api/lab-orders/{order_id}/results",
         {k: v for k, v in potassium().items() if k != "effective_at"}, "effective_at"),
    ]
    for url, body, field in cases:
        err = error(post(api, url, body), 422)
        assert err["field"] == field, (field, err)
        assert err["code"] == "invalid_input" and field in err["message"]
    critical_hidden = error(post(api, f"/api/lab-orders/{order_id}/results",
                                 potassium(7.0, critical_high=6.5, abnormal_flag="H")), 422)
    assert critical_hidden["field"] == "abnormal_flag" and "mmol/L" in critical_hidden["message"]
    result_id = record(api, order_id, potassium())["id"]
    correct_url = f"/api/lab-orders/{order_id}/results/{result_id}/correct"
    for body, field in (({"value": 5.0}, "reason"), ({"value": 5.0, "reason": " "}, "reason"),
                        ({"loinc_code": "2345-7", "reason": "x"}, "loinc_code"),
                        ({"value": "5", "reason": "x"}, "value")):
        assert error(post(api, correct_url, body, HTTP_IF_MATCH="2"), 422)["field"] == field
    assert error(post(api, correct_url, {"value": 4.2, "reason": "same"}, HTTP_IF_MATCH="2"),
                 422)["code"] == "no_change"
    assert StoredEvent.objects.count() == before + 1
    assert error(post(api, f"/api/lab-orders/{order_id}/results/{uuid.uuid4()}/cancel",
                      {"reason": "x"}, HTTP_IF_MATCH="2"), 404)["field"] == "result_id"


def test_roles(api, system, clinic, registered):
    order_id = place(api, registered)
    nurse = client_for(make_staff(system, clinic, "nurse_joy", "nurse"))
    clerk = client_for(make_staff(system, clinic, "clerk", "receptionist"))
    assert error(post(nurse, f"/api/patients/{registered}/lab-orders", ORDER), 403)[
        "code"] == "permission_denied"
    assert error(post(clerk, f"/api/lab-orders/{order_id}/results", potassium()), 403)[
        "code"] == "permission_denied"
    result_id = record(nurse, order_id, potassium())["id"]
    assert error(post(clerk, f"/api/lab-orders/{order_id}/results/{result_id}/cancel",
                      {"reason": "x"}, HTTP_IF_MATCH="2"), 403)["code"] == "permission_denied"
    assert error(post(nurse, f"/api/lab-orders/{order_id}/cancel", {"reason": "x"},
                      HTTP_IF_MATCH="2"), 403)["code"] == "permission_denied"
    assert clerk.get(f"/api/patients/{registered}/lab-results").json()["count"] == 1


def test_an_order_on_another_patients_encounter_is_422(api, doctor, clinic, registered,
                                                       patient_fields):
    other = register_patient(Context(user_id=doctor.pk, username=doctor.username, role="doctor",
                                     clinic_ids=frozenset({clinic.id})),
                             clinic_id=clinic.id, **{**patient_fields, "mrn": "MRN-2"})
    theirs = post(api, f"/api/patients/{other.aggregate_id}/encounters")
    assert theirs.status_code == 201, theirs.content
    before = StoredEvent.objects.count()
    refused = post(api, f"/api/patients/{registered}/lab-orders",
                   {**ORDER, "encounter_id": theirs.json()["id"]})
    err = error(refused, 422)
    assert (err["code"], err["field"]) == ("invalid_input", "encounter_id")
    assert StoredEvent.objects.count() == before


def test_unknown_and_foreign_orders_and_patients_are_404(api, system, other_clinic, registered):
    from medflow.patients.services import register_patient

    foreign_patient = register_patient(system, clinic_id=other_clinic.id, mrn="F1",
                                       given_names="A", family_name="B",
                                       birth_date="2000-01-01").aggregate_id
    far_doctor = make_staff(system, other_clinic, "dr_far", "doctor")
    far = client_for(far_doctor)
    foreign_order = place(far, foreign_patient)
    foreign_result = record(far, foreign_order, potassium())["id"]
    before = StoredEvent.objects.count()
    responses = [
        post(api, f"/api/patients/{foreign_patient}/lab-orders", ORDER),
        api.get(f"/api/patients/{foreign_patient}/lab-orders"),
        api.get(f"/api/patients/{foreign_patient}/lab-results"),
        api.get(f"/api/lab-orders/{foreign_order}"),
        post(api, f"/api/lab-orders/{foreign_order}/results", potassium()),
        post(api, f"/api/lab-orders/{foreign_order}/results/{foreign_result}/correct",
             {"value": 1.0, "reason": "x"}, HTTP_IF_MATCH="1"),
        post(api, f"/api/lab-orders/{foreign_order}/results/{foreign_result}/cancel",
             {"reason": "x"}, HTTP_IF_MATCH="9"),
        post(api, f"/api/lab-orders/{foreign_order}/cancel", {"reason": "x"}, HTTP_IF_MATCH="9"),
        api.get(f"/api/lab-orders/{uuid.uuid4()}"),
        api.get(f"/api/patients/{uuid.uuid4()}/lab-results"),
    ]
    for response in responses:
        assert error(response, 404)["code"] == "not_found"
    assert StoredEvent.objects.count() == before


def test_idempotency_key_records_a_result_once(api, registered):
    order_id = place(api, registered)
    key = str(uuid.uuid4())
    first = record(api, order_id, potassium(), HTTP_IDEMPOTENCY_KEY=key)
    again = record(api, order_id, potassium(), HTTP_IDEMPOTENCY_KEY=key)
    assert again == first
    assert StoredEvent.objects.filter(event_type="LabResultRecorded").count() == 1
    given_id = str(uuid.uuid4())
    assert record(api, order_id, potassium(result_id=given_id))["id"] == given_id
    assert error(post(api, f"/api/lab-orders/{order_id}/results", potassium(result_id=given_id)),
                 409)["code"] == "result_exists"


def test_critical_result_reaches_the_ordering_doctors_work_queue(api, registered):
    order_id = place(api, registered)
    record(api, order_id, potassium(6.9, critical_high=6.5))
    tasks = api.get("/api/tasks").json()
    assert tasks["count"] == 1 and tasks["items"][0]["priority"] == "urgent"
    alerts = api.get("/api/alerts").json()
    assert alerts["count"] == 1 and alerts["items"][0]["severity"] == "critical"
    assert alerts["items"][0]["patient_id"] == str(registered)
    timeline = api.get(f"/api/patients/{registered}/timeline", {"kind": "lab"}).json()
    # Newest first by clinical time: the specimen was taken two hours before the order was keyed.
    assert [i["event_type"] for i in timeline["items"]] == ["LabOrderPlaced", "LabResultRecorded"]


def test_openapi_lists_the_lab_paths(db):
    paths = Client().get("/api/openapi.json").json()["paths"]
    for path in ("/api/patients/{patient_id}/lab-orders", "/api/patients/{patient_id}/lab-results",
                 "/api/lab-orders/{order_id}/results",
                 "/api/lab-orders/{order_id}/results/{result_id}/correct",
                 "/api/lab-orders/{order_id}/results/{result_id}/cancel"):
        assert path in paths
