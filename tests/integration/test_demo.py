"""The demo data: loaded through the services, idempotent, with whole clinical histories."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from medflow.access.models import Membership
from medflow.access.tokens import create_token
from medflow.eventstore.models import StoredEvent
from medflow.patients.models import PatientReadModel
from tests.integration.test_cli import run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(settings):
    settings.DEBUG = True
    return run("demo", "load")


def test_demo_load_is_idempotent_and_consistent(demo):
    assert "25 patient(s) added (0 sample item(s) refused" in demo
    events = StoredEvent.objects.count()
    assert "0 patient(s) added" in run("demo", "load")
    assert StoredEvent.objects.count() == events > 1000
    assert PatientReadModel.objects.count() == 25
    user = get_user_model().objects.get(username="demo")
    assert user.check_password("demo") and Membership.objects.get(user=user).role == "doctor"
    call_command("verify")


def test_a_demo_timeline_shows_the_clinical_history_in_order(demo):
    patient = PatientReadModel.objects.get(mrn="MRN-00002")
    doctor = get_user_model().objects.get(username="demo")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(doctor)[1]}")
    items = api.get(f"/api/patients/{patient.id}/timeline", {"limit": 200}).json()["items"]
    kinds = {i["kind"] for i in items}
    assert {"encounter", "vitals", "diagnosis", "medication", "lab", "note"} <= kinds
    times = [i["occurred_at"] for i in items]
    assert times == sorted(times, reverse=True)
    # Historical facts keep their clinical time, not the time they were loaded.
    assert min(i["occurred_at"] for i in items if i["kind"] == "medication") < "2023"
    chart = api.get(f"/api/patients/{patient.id}/chart").json()
    assert chart["patient"]["family_name"] == "Wunsch"
    assert chart["latest_vitals"] and chart["recent_notes"]


def test_a_second_demo_doctor_approves_what_demo_prescribes(demo):
    patient = PatientReadModel.objects.get(mrn="MRN-00002")
    users = get_user_model().objects
    prescriber, approver = (
        Client(HTTP_AUTHORIZATION=f"Bearer {create_token(users.get(username=name))[1]}")
        for name in ("demo", "demo-doctor"))
    assert users.get(username="demo-doctor").check_password("demo")
    written = prescriber.post(
        f"/api/patients/{patient.id}/prescriptions", content_type="application/json",
        data={"drug_code": "197361", "drug_name": "Amlodipine 5 MG Oral Tablet", "dose": "5 mg",
              "route": "oral", "frequency": "once daily", "needs_approval": True})
    assert written.status_code == 201, written.content
    prescription = written.json()["id"]
    assert prescriber.post(f"/api/prescriptions/{prescription}/approve",
                           HTTP_IF_MATCH="1").status_code == 422
    approved = approver.post(f"/api/prescriptions/{prescription}/approve", HTTP_IF_MATCH="1")
    assert approved.status_code == 200, approved.content
