"""The demo sample's Synthea allergies are loaded through the services at their clinical time."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from medflow.access.tokens import create_token
from medflow.clinical.models import AllergyRecord
from medflow.demo.loader import demo_patients
from medflow.patients.models import PatientReadModel
from tests.integration.test_demo import demo  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_sample_carries_synthea_allergies():
    with_allergies = {p["mrn"]: p["allergies"] for p in demo_patients() if p["allergies"]}
    assert sorted(with_allergies) == ["MRN-00010", "MRN-00013", "MRN-00015"]
    latex = with_allergies["MRN-00010"][0]
    assert (latex["display"], latex["category"], latex["criticality"]) == (
        "Latex (substance)", "environment", "high")  # anaphylaxis was severe
    assert latex["reactions"][0] == {"code": "39579001", "manifestation": "Anaphylaxis (disorder)",
                                     "severity": "severe"}


def test_demo_patients_have_their_allergies_on_the_chart(demo):  # noqa: F811
    assert "(0 sample item(s) refused" in demo
    assert AllergyRecord.objects.filter(status="active").count() == 9
    patient = PatientReadModel.objects.get(mrn="MRN-00010")
    doctor = get_user_model().objects.get(username="demo")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(doctor)[1]}")
    chart = api.get(f"/api/patients/{patient.id}/chart").json()
    assert len(chart["allergies"]) == 6
    assert (chart["allergies"][0]["display"], chart["allergies"][0]["criticality"]) == (
        "Latex (substance)", "high")
    timeline = api.get(f"/api/patients/{patient.id}/timeline",
                       {"kind": "allergy", "limit": 50}).json()["items"]
    assert len(timeline) == 6 and {i["occurred_at"][:10] for i in timeline} == {"1999-12-29"}
