"""Break-glass: a clinician reads a patient of another clinic for a limited time, logged and alerted."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from medflow.access.models import BreakGlassGrantReadModel
from medflow.access.services import break_glass
from medflow.access.tokens import create_token
from medflow.audit.models import AccessLogEntry
from medflow.context import Context
from medflow.eventstore.models import StoredEvent
from medflow.patients.services import register_patient
from medflow.work.models import AlertReadModel
from tests.conftest import PATIENT, make_staff

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user)[1]}")


def ctx_of(user, role, clinic) -> Context:
    return Context(user_id=user.pk, username=user.username, role=role,
                   clinic_ids=frozenset({clinic.id}))


@pytest.fixture
def far_patient(system, other_clinic):
    """A patient of another clinic than the doctor's."""
    far_doctor = make_staff(system, other_clinic, "far_doctor", "doctor")
    return register_patient(ctx_of(far_doctor, "doctor", other_clinic), clinic_id=other_clinic.id,
                            **PATIENT).aggregate_id


def open_glass(api, patient_id, reason="unconscious patient in our ER"):
    return api.post(f"/api/patients/{patient_id}/break-glass", {"reason": reason},
                    content_type="application/json")


def test_break_glass_opens_the_record_for_reading_and_is_logged(doctor, far_patient, other_clinic):
    api = client_for(doctor)
    assert api.get(f"/api/patients/{far_patient}").status_code == 404
    assert AccessLogEntry.objects.filter(patient_id=far_patient).count() == 0

    response = open_glass(api, far_patient)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["patient_id"] == str(far_patient)

    # The grant is an event, with who, why and until when.
    event = StoredEvent.objects.get(aggregate_id=body["id"])
    assert event.event_type == "BreakGlassAccessGranted"
    assert event.event_data["user_id"] == doctor.pk
    assert event.event_data["reason"] == "unconscious patient in our ER"
    assert event.metadata["reason"] == "unconscious patient in our ER"

    # The patient's clinic is told, with a warning alert about the patient.
    alert = AlertReadModel.objects.get(clinic_id=other_clinic.id, patient_id=far_patient)
    assert alert.severity == "warning" and alert.source == "break_glass"

    read = api.get(f"/api/patients/{far_patient}")
    assert read.status_code == 200 and read.json()["id"] == str(far_patient)
    assert api.get(f"/api/patients/{far_patient}/encounters").status_code == 200
    assert api.get(f"/api/patients/{far_patient}/history").status_code == 200

    entries = AccessLogEntry.objects.filter(patient_id=far_patient)
    assert entries.count() >= 3
    assert all(e.break_glass and e.user_id == doctor.pk for e in entries)


def test_break_glass_grants_no_writes(doctor, far_patient):
    api = client_for(doctor)
    assert open_glass(api, far_patient).status_code == 201
    before = StoredEvent.objects.filter(aggregate_id=far_patient).count()
    patch = api.patch(f"/api/patients/{far_patient}", {"phone": "+1 555 0199"},
                      content_type="application/json", HTTP_IF_MATCH='"1"')
    assert patch.status_code == 404
    vitals = api.post(f"/api/patients/{far_patient}/vitals", {"heart_rate": 80},
                      content_type="application/json")
    assert vitals.status_code == 404
    note = api.post(f"/api/patients/{far_patient}/notes", {"subjective": "x"},
                    content_type="application/json")
    assert note.status_code == 404
    assert StoredEvent.objects.filter(aggregate_id=far_patient).count() == before
    assert StoredEvent.objects.filter(event_type__in=["VitalSignsRecorded", "NoteDrafted"]).count() == 0


def test_break_glass_expires(doctor, clinic, far_patient, settings):
    settings.MEDFLOW_BREAK_GLASS_MINUTES = 60
    started = timezone.now() - timedelta(minutes=61)
    result = break_glass(ctx_of(doctor, "doctor", clinic), far_patient, reason="night shift",
                         now=started)
    grant = BreakGlassGrantReadModel.objects.get(id=result.aggregate_id)
    assert grant.expires_at == started + timedelta(minutes=60)
    assert client_for(doctor).get(f"/api/patients/{far_patient}").status_code == 404


def test_break_glass_needs_a_reason_and_a_clinician(system, doctor, clinic, far_patient, registered):
    api = client_for(doctor)
    blank = open_glass(api, far_patient, reason="   ")
    assert blank.status_code == 422 and blank.json()["error"]["field"] == "reason"
    missing = api.post(f"/api/patients/{far_patient}/break-glass", {},
                       content_type="application/json")
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "reason"
    own = open_glass(api, registered)
    assert own.status_code == 422 and own.json()["error"]["code"] == "break_glass_not_needed"
    receptionist = make_staff(system, clinic, "front_desk", "receptionist")
    refused = open_glass(client_for(receptionist), far_patient)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    unknown = open_glass(api, "00000000-0000-0000-0000-000000000001")
    assert unknown.status_code == 404
    assert not BreakGlassGrantReadModel.objects.exists()
    assert not StoredEvent.objects.filter(event_type="BreakGlassAccessGranted").exists()
