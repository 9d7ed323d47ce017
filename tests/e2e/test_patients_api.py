"""The patients REST API through Django's test client: status codes, error shape, auth."""

import uuid

import pytest
from django.test import Client

from medflow.access.tokens import create_token
from medflow.eventstore.models import StoredEvent

pytestmark = pytest.mark.django_db

BODY = {"mrn": "MRN-9", "given_names": "Grace", "family_name": "Hopper",
        "birth_date": "1906-12-09", "sex": "female", "address": {"city": "New York"}}


@pytest.fixture
def api(doctor):
    _, raw = create_token(doctor)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def create(api, **changes):
    response = api.post("/api/patients", {**BODY, **changes}, content_type="application/json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def error(response, status):
    assert response.status_code == status, response.content
    return response.json()["error"]


def test_register_read_search(api):
    patient_id = create(api)
    response = api.get(f"/api/patients/{patient_id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["family_name"], body["version"], body["address"]["city"]) == ("Hopper", 1,
                                                                              "New York")
    assert response["ETag"] == '"1"'
    found = api.get("/api/patients", {"q": "grace"}).json()
    assert found["count"] == 1 and found["items"][0]["id"] == patient_id


def test_patch_needs_if_match_and_detects_conflicts(api):
    patient_id = create(api)
    url = f"/api/patients/{patient_id}"
    assert error(api.patch(url, {"phone": "555"}, content_type="application/json"), 428)[
        "code"] == "precondition_required"
    ok = api.patch(url, {"phone": "555 0100"}, content_type="application/json",
                   HTTP_IF_MATCH='"1"')
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = error(api.patch(url, {"phone": "555 0199"}, content_type="application/json",
                            HTTP_IF_MATCH="1"), 409)
    assert stale["code"] == "version_conflict"
    assert api.get(url).json()["phone"] == "555 0100"


def test_invalid_input_names_the_field_and_writes_nothing(api):
    before = StoredEvent.objects.count()
    cases = [
        ({**BODY, "birth_date": "2999-01-01"}, "birth_date"),
        ({**BODY, "birth_date": "yesterday"}, "birth_date"),
        ({k: v for k, v in BODY.items() if k != "family_name"}, "family_name"),
        ({**BODY, "is_admin": True}, "is_admin"),
        ({**BODY, "email": "nope"}, "email"),
        ({**BODY, "sex": "x"}, "sex"),
    ]
    for body, field in cases:
        response = api.post("/api/patients", body, content_type="application/json")
        err = error(response, 422)
        assert err["field"] == field, (field, err)
        assert err["code"] == "invalid_input" and field in err["message"]
    assert StoredEvent.objects.count() == before


def test_duplicate_mrn_is_409(api):
    create(api)
    assert error(api.post("/api/patients", BODY, content_type="application/json"), 409) == {
        "code": "mrn_taken", "message": "MRN MRN-9 is already used in this clinic", "field": "mrn"}


def test_unknown_and_foreign_patients_are_404(api, system, other_clinic):
    from medflow.patients.services import register_patient

    assert error(api.get(f"/api/patients/{uuid.uuid4()}"), 404)["code"] == "not_found"
    foreign = register_patient(system, clinic_id=other_clinic.id, **{**BODY, "address": None})
    for response in (
        api.get(f"/api/patients/{foreign.aggregate_id}"),
        api.get(f"/api/patients/{foreign.aggregate_id}/history"),
        api.patch(f"/api/patients/{foreign.aggregate_id}", {"phone": "1"},
                  content_type="application/json", HTTP_IF_MATCH="1"),
        api.post(f"/api/patients/{foreign.aggregate_id}/archive", content_type="application/json"),
    ):
        assert error(response, 404)["code"] == "not_found"
    assert api.get("/api/patients").json()["count"] == 0


def test_without_credentials_401(db):
    anonymous = Client()
    assert error(anonymous.get("/api/patients"), 401)["code"] == "unauthenticated"
    bad = Client(HTTP_AUTHORIZATION="Bearer mf_not-a-token")
    assert error(bad.get("/api/patients"), 401)["code"] == "unauthenticated"


def test_revoked_and_expired_tokens_are_refused(doctor):
    from django.utils import timezone

    from medflow.access import tokens

    token, raw = create_token(doctor)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/patients").status_code == 200
    tokens.revoke(raw[:12])
    assert client.get("/api/patients").status_code == 401
    token2, raw2 = create_token(doctor)
    type(token2).objects.filter(pk=token2.pk).update(expires_at=timezone.now())
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw2}").get("/api/patients").status_code == 401
    assert len(token.key_hash) == 64 and raw not in token.key_hash


def test_session_login_works_too(doctor):
    client = Client()
    assert client.login(username=doctor.username, password="pw-for-tests-1")
    assert client.get("/api/patients").status_code == 200


def test_archive_history_and_time_travel(api):
    patient_id = create(api)
    api.patch(f"/api/patients/{patient_id}", {"family_name": "Murray"},
              content_type="application/json", HTTP_IF_MATCH="1")
    archived = api.post(f"/api/patients/{patient_id}/archive", {"reason": "deceased"},
                        content_type="application/json")
    assert archived.json()["version"] == 3
    assert error(api.patch(f"/api/patients/{patient_id}", {"phone": "1"},
                           content_type="application/json", HTTP_IF_MATCH="3"),
                 422)["code"] == "patient_archived"
    history = api.get(f"/api/patients/{patient_id}/history").json()
    assert [h["type"] for h in history] == ["PatientRegistered", "PatientUpdated",
                                            "PatientArchived"]
    assert history[1]["data"] == {"family_name": "Murray"}
    assert history[0]["who"] == "dr_house" and history[2]["reason"] == "deceased"
    first_time = history[0]["timestamp"]
    then = api.get(f"/api/patients/{patient_id}", {"as_of": first_time}).json()
    assert (then["family_name"], then["version"], then["archived"]) == ("Hopper", 1, False)
    assert api.get(f"/api/patients/{patient_id}", {"version": 2}).json()["family_name"] == (
        "Murray")
    assert error(api.get(f"/api/patients/{patient_id}", {"as_of": "2026-01-01T00:00:00"}),
                 422)["field"] == "as_of"
    assert error(api.get(f"/api/patients/{patient_id}", {"as_of": "1900-01-01T00:00:00Z"}),
                 404)["field"] == "as_of"


def test_idempotency_key_replays_the_first_result(api):
    key = str(uuid.uuid4())
    first = api.post("/api/patients", BODY, content_type="application/json",
                     HTTP_IDEMPOTENCY_KEY=key)
    second = api.post("/api/patients", BODY, content_type="application/json",
                      HTTP_IDEMPOTENCY_KEY=key)
    assert second.status_code == 201 and second.json() == first.json()
    assert error(api.post("/api/patients", BODY, content_type="application/json",
                          HTTP_IDEMPOTENCY_KEY="nope"), 422)["field"] == "Idempotency-Key"


def test_request_id_becomes_the_correlation_id(api):
    request_id = str(uuid.uuid4())
    response = api.post("/api/patients", BODY, content_type="application/json",
                        HTTP_X_REQUEST_ID=request_id)
    event = StoredEvent.objects.get(aggregate_id=response.json()["id"])
    assert event.metadata["correlation_id"] == request_id
    assert event.metadata["request_id"] == request_id
    assert event.metadata["client_ip"] == "127.0.0.1"


def test_openapi_schema_and_docs(db):
    schema = Client().get("/api/openapi.json").json()
    assert "/api/patients/{patient_id}/history" in schema["paths"]
    assert Client().get("/api/docs").status_code == 200


def test_malformed_json_is_400(api):
    response = api.post("/api/patients", "{bad", content_type="application/json")
    assert error(response, 400)["code"] == "bad_request"


def test_foreign_patient_with_a_stale_if_match_is_404_not_409(api, system, other_clinic):
    from medflow.patients.services import register_patient

    foreign = register_patient(system, clinic_id=other_clinic.id, **{**BODY, "address": None})
    response = api.patch(f"/api/patients/{foreign.aggregate_id}", {"phone": "1"},
                         content_type="application/json", HTTP_IF_MATCH="7")
    assert error(response, 404)["code"] == "not_found"
