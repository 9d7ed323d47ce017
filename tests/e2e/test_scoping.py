"""A role holds in the clinic it was granted in only; receptionists see no clinical detail."""

import pytest
from django.test import Client

from medflow.access.services import grant_role
from medflow.access.tokens import create_token
from medflow.patients.services import register_patient
from medflow.timeline.models import TimelineEntry

pytestmark = pytest.mark.django_db

BODY = {"given_names": "A", "family_name": "B", "birth_date": "2000-01-01"}


def test_a_role_in_one_clinic_does_not_apply_in_another(system, clinic, other_clinic, doctor):
    grant_role(system, other_clinic.id, doctor.username, "receptionist")
    theirs = register_patient(system, clinic_id=other_clinic.id, mrn="O-1", **BODY).aggregate_id
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(doctor)[1]}")
    # Acting as the doctor of `clinic`, the other clinic's patients are out of reach.
    as_doctor = api.get(f"/api/patients/{theirs}", HTTP_X_CLINIC_ID=str(clinic.id))
    assert as_doctor.status_code == 404
    vitals = api.post(f"/api/patients/{theirs}/vitals", {"heart_rate": 70},
                      content_type="application/json", HTTP_X_CLINIC_ID=str(clinic.id))
    assert vitals.status_code == 404
    # Without a clinic chosen, two different roles mean no role: clinical writes are refused.
    unscoped = api.post(f"/api/patients/{theirs}/vitals", {"heart_rate": 70},
                        content_type="application/json")
    assert unscoped.status_code == 403
    # As the receptionist of the other clinic, the patient is visible, clinical writes are not.
    as_reception = api.post(f"/api/patients/{theirs}/vitals", {"heart_rate": 70},
                            content_type="application/json", HTTP_X_CLINIC_ID=str(other_clinic.id))
    assert as_reception.status_code == 403
    assert api.get(f"/api/patients/{theirs}",
                   HTTP_X_CLINIC_ID=str(other_clinic.id)).status_code == 200


def test_unknown_clinic_header_is_refused(clinic, doctor, other_clinic):
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(doctor)[1]}")
    response = api.get("/api/patients", HTTP_X_CLINIC_ID=str(other_clinic.id))
    assert response.status_code == 403 and response.json()["error"]["field"] == "X-Clinic-ID"
    bad = api.get("/api/patients", HTTP_X_CLINIC_ID="nope")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "X-Clinic-ID"


def test_receptionists_see_no_clinical_detail_on_the_timeline(system, clinic, doctor_ctx,
                                                              registered):
    from medflow.clinical.services import record_vital_signs
    from tests.conftest import make_staff

    record_vital_signs(doctor_ctx, patient_id=registered, heart_rate=71)
    assert TimelineEntry.objects.filter(patient_id=registered, kind="vitals").exists()
    desk = make_staff(system, clinic, "desk", "receptionist")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(desk)[1]}")
    kinds = {i["kind"] for i in api.get(f"/api/patients/{registered}/timeline").json()["items"]}
    assert kinds == {"patient"}
