"""The allergy endpoints through Django's test client: lifecycle, If-Match, errors by field,
roles, scope, the chart (now and as of a time), the timeline and the access log."""

import uuid

import pytest

from medflow.audit.models import AccessLogEntry
from medflow.eventstore.models import StoredEvent
from tests.conftest import make_staff
from tests.e2e.test_clinical_api import JSON, client_for, error, post

pytestmark = pytest.mark.django_db

PENICILLIN = {"code_system": "RxNorm", "code": "7980", "display": "Penicillin G",
              "category": "medication", "criticality": "high", "onset_date": "2019-05-01",
              "reactions": [{"manifestation": "Anaphylaxis", "code": "39579001",
                             "severity": "severe"}],
              "note": "Collapsed after amoxicillin"}


@pytest.fixture
def api(doctor):
    return client_for(doctor)


@pytest.fixture
def nurse_api(system, clinic):
    return client_for(make_staff(system, clinic, "nurse_joy", "nurse"))


def test_record_read_resolve_with_if_match(api, nurse_api, registered):
    created = post(nurse_api, f"/api/patients/{registered}/allergies", PENICILLIN)
    assert created["version"] == 1
    url = f"/api/allergies/{created['id']}"
    read = api.get(url)
    assert read.status_code == 200 and read["ETag"] == '"1"'
    body = read.json()
    assert {k: body[k] for k in ("display", "type", "category", "criticality", "status", "note",
                                 "onset_date")} == {
        "display": "Penicillin G", "type": "allergy", "category": "medication",
        "criticality": "high", "status": "active", "note": "Collapsed after amoxicillin",
        "onset_date": "2019-05-01"}
    assert body["reactions"] == PENICILLIN["reactions"]
    resolve = f"{url}/resolve"
    assert error(api.post(resolve, {"reason": "x"}, content_type=JSON), 428)[
        "code"] == "precondition_required"
    assert error(api.post(resolve, {"reason": "x"}, content_type=JSON, HTTP_IF_MATCH='"2"'), 409)[
        "code"] == "version_conflict"
    assert error(nurse_api.post(resolve, {"reason": "x"}, content_type=JSON, HTTP_IF_MATCH='"1"'),
                 403)["code"] == "permission_denied"
    missing = error(api.post(resolve, {}, content_type=JSON, HTTP_IF_MATCH='"1"'), 422)
    assert missing["field"] == "reason"
    done = post(api, resolve, {"reason": "Tolerated a challenge", "resolved_on": "2026-01-10"},
                status=200, HTTP_IF_MATCH='"1"')
    assert done["version"] == 2
    again = error(api.post(resolve, {"reason": "x"}, content_type=JSON, HTTP_IF_MATCH='"2"'), 422)
    assert again["code"] == "already_resolved"
    listed = api.get(f"/api/patients/{registered}/allergies").json()
    assert [(i["status"], i["resolved_on"]) for i in listed["items"]] == [("resolved", "2026-01-10")]
    assert api.get(f"/api/patients/{registered}/allergies", {"status": "active"}).json()[
        "count"] == 0


def test_refute_and_entered_in_error(api, registered):
    first = post(api, f"/api/patients/{registered}/allergies", PENICILLIN)["id"]
    post(api, f"/api/allergies/{first}/refute", {"reason": "Negative skin test"}, status=200,
         HTTP_IF_MATCH='"1"')
    second = post(api, f"/api/patients/{registered}/allergies", PENICILLIN)["id"]
    post(api, f"/api/allergies/{second}/refute", {"reason": "Wrong chart", "entered_in_error": True},
         status=200, HTTP_IF_MATCH='"1"')
    statuses = {i["id"]: i["status"] for i in api.get(
        f"/api/patients/{registered}/allergies").json()["items"]}
    assert statuses == {first: "refuted", second: "entered-in-error"}
    again = error(api.post(f"/api/allergies/{first}/refute", {"reason": "x"}, content_type=JSON,
                           HTTP_IF_MATCH='"2"'), 422)
    assert again["code"] == "already_refuted"


def test_bad_input_names_its_field_and_writes_nothing(api, registered):
    post(api, f"/api/patients/{registered}/allergies", PENICILLIN)
    before = StoredEvent.objects.count()
    url = f"/api/patients/{registered}/allergies"
    for payload, status, field in (
        ({**PENICILLIN, "code": "penicillin"}, 422, "code"),
        ({**PENICILLIN, "code_system": "ICD-10"}, 422, "code_system"),
        ({**PENICILLIN, "category": "drug"}, 422, "category"),
        ({**PENICILLIN, "criticality": "deadly"}, 422, "criticality"),
        ({**PENICILLIN, "onset_date": "2999-01-01"}, 422, "onset_date"),
        ({**PENICILLIN, "reactions": [{"manifestation": "Rash", "severity": "awful"}]}, 422,
         "reactions.0.severity"),
        ({**PENICILLIN, "reactions": [{"severity": "mild"}]}, 422, "reactions.0.manifestation"),
        ({k: v for k, v in PENICILLIN.items() if k != "category"}, 422, "category"),
        ({**PENICILLIN, "severity": "mild"}, 422, "severity"),
        (PENICILLIN, 409, "code"),  # already on the active list
    ):
        err = error(api.post(url, payload, content_type=JSON), status)
        assert err["field"] == field, (payload, err)
    assert StoredEvent.objects.count() == before


def test_chart_lists_active_allergies_now_and_as_of(api, registered):
    created = post(api, f"/api/patients/{registered}/allergies", PENICILLIN)["id"]
    recorded_at = api.get(f"/api/allergies/{created}").json()["created_at"]
    post(api, f"/api/allergies/{created}/refute", {"reason": "Negative skin test"}, status=200,
         HTTP_IF_MATCH='"1"')
    assert api.get(f"/api/patients/{registered}/chart").json()["allergies"] == []
    then = api.get(f"/api/patients/{registered}/chart", {"as_of": recorded_at}).json()
    assert [(a["id"], a["status"], a["criticality"]) for a in then["allergies"]] == [
        (created, "active", "high")]
    old = api.get(f"/api/allergies/{created}", {"as_of": recorded_at})
    assert old.json()["status"] == "active" and old["ETag"] == '"1"'


def test_reads_are_audited_and_scoped(api, system, clinic, other_clinic, registered,
                                      patient_fields):
    from medflow.clinical.services import record_allergy
    from medflow.patients.services import register_patient

    created = post(api, f"/api/patients/{registered}/allergies", PENICILLIN)["id"]
    before = AccessLogEntry.objects.count()
    api.get(f"/api/patients/{registered}/allergies")
    api.get(f"/api/allergies/{created}")
    actions = list(AccessLogEntry.objects.order_by("id").values_list("action", "patient_id"))[before:]
    assert actions == [(f"GET /api/patients/{registered}/allergies", registered),
                       (f"GET /api/allergies/{created}", registered)]
    receptionist = client_for(make_staff(system, clinic, "front_desk", "receptionist"))
    for url in (f"/api/patients/{registered}/allergies", f"/api/allergies/{created}"):
        assert error(receptionist.get(url), 403)["code"] == "permission_denied"
    foreign = register_patient(system, clinic_id=other_clinic.id, **patient_fields).aggregate_id
    theirs = record_allergy(system, patient_id=foreign, **PENICILLIN).aggregate_id
    for response in (
        api.get(f"/api/patients/{foreign}/allergies"),
        api.get(f"/api/allergies/{theirs}"),
        api.get(f"/api/allergies/{uuid.uuid4()}"),
        api.post(f"/api/patients/{foreign}/allergies", PENICILLIN, content_type=JSON),
        api.post(f"/api/allergies/{theirs}/refute", {"reason": "x"}, content_type=JSON,
                 HTTP_IF_MATCH='"1"'),
    ):
        assert error(response, 404)["code"] == "not_found"


def test_timeline_lists_allergies_for_clinicians_only(api, system, clinic, registered):
    post(api, f"/api/patients/{registered}/allergies", PENICILLIN)
    items = api.get(f"/api/patients/{registered}/timeline", {"kind": "allergy"}).json()["items"]
    assert [(i["summary"], i["occurred_at"][:10]) for i in items] == [
        ("Allergy: Penicillin G (medication, high criticality)", "2019-05-01")]
    desk = client_for(make_staff(system, clinic, "front_desk", "receptionist"))
    assert desk.get(f"/api/patients/{registered}/timeline", {"kind": "allergy"}).json()[
        "items"] == []
