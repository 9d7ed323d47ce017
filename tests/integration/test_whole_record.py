"""A patient's whole record through every context: every read model equals a fresh replay, and
forgetting the patient leaves no plaintext anywhere while `verify` still passes."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from medflow.clinical import services as clinical
from medflow.context import system_context
from medflow.labs import services as labs
from medflow.patients.services import archive_patient, forget_patient, register_patient
from medflow.scheduling import services as scheduling
from medflow.scheduling.models import AppointmentReadModel
from medflow.work.models import AlertReadModel, TaskReadModel

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "Ignatius"


def tables_containing(text: str) -> list[str]:
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            if any(text in str(value) for row in cursor.fetchall() for value in row):
                found.append(table)
    return found


@pytest.fixture
def history(doctor_ctx, doctor, clinic):
    """Register a patient and give them a year of care through the services."""
    patient = register_patient(doctor_ctx, clinic_id=clinic.id, mrn="W-1", given_names=NAME,
                               family_name="Semmelweis", birth_date="1950-07-01").aggregate_id
    start = timezone.now() + timedelta(minutes=10)
    visit = scheduling.schedule_appointment(
        doctor_ctx, patient_id=patient, provider_id=doctor.pk, starts_at=start,
        duration_minutes=30, reason=f"{NAME} feels dizzy").aggregate_id
    scheduling.check_in_appointment(doctor_ctx, visit, expected_version=1)  # arrives early
    later = scheduling.schedule_appointment(
        doctor_ctx, patient_id=patient, provider_id=doctor.pk, starts_at=start + timedelta(days=7),
        duration_minutes=30).aggregate_id
    clinical.record_vital_signs(doctor_ctx, patient_id=patient, systolic=150, diastolic=95,
                                heart_rate=88, temperature_c=37.1)
    clinical.add_diagnosis(doctor_ctx, patient_id=patient, code_system="ICD-10", code="I10",
                           display="Essential hypertension")
    clinical.prescribe_medication(doctor_ctx, patient_id=patient, drug_code="314076",
                                  drug_name="lisinopril 10 MG", dose="10 mg", route="oral",
                                  frequency="daily", reason=f"BP for {NAME}")
    note = clinical.draft_note(doctor_ctx, patient_id=patient, subjective=f"{NAME} dizzy",
                               assessment="hypertension", plan="ACE inhibitor").aggregate_id
    clinical.sign_note(doctor_ctx, note, expected_version=1)
    order = labs.place_lab_order(doctor_ctx, patient, tests=[
        {"loinc_code": "2823-3", "display": "Potassium"}]).aggregate_id
    labs.record_lab_result(doctor_ctx, order, loinc_code="2823-3", display="Potassium",
                           value=6.9, unit="mmol/L", reference_low=3.5, reference_high=5.1,
                           critical_high=6.0, effective_at=timezone.now())
    archive_patient(doctor_ctx, patient, reason="moved away")
    return patient, later


def test_every_read_model_equals_a_fresh_replay(history):
    patient, later = history
    # The process managers ran: an encounter from the check-in, an alert and a task from the
    # critical potassium, the future appointment cancelled by the archive.
    assert AlertReadModel.objects.filter(patient_id=patient, severity="critical").count() == 1
    assert TaskReadModel.objects.filter(patient_id=patient).count() == 1
    assert AppointmentReadModel.objects.get(id=later).status == "cancelled"
    call_command("verify")
    call_command("projections", "rebuild", "--all")
    call_command("verify")


def test_forgetting_the_patient_everywhere(history, system):
    patient, _ = history
    assert len(tables_containing(NAME)) >= 3
    forget_patient(system_context("erasure"), patient, reason="GDPR Art. 17 request",
                   override_retention=True)
    assert tables_containing(NAME) == []
    assert tables_containing("Semmelweis") == []
    call_command("verify")
    call_command("projections", "rebuild", "--all")
    assert tables_containing(NAME) == []
    call_command("verify")
