"""The web UI's forms: each calls its service, shows refusals next to their field, writes nothing
when refused, and explains a version conflict with who changed the record and when."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from medflow.clinical import services as clinical
from medflow.clinical.models import LatestVitalSign
from medflow.eventstore.models import StoredEvent
from medflow.labs import services as labs
from medflow.labs.models import LabResultReadModel
from medflow.patients.models import PatientReadModel
from medflow.patients.services import update_patient
from medflow.scheduling.models import AppointmentReadModel
from medflow.scheduling.services import schedule_appointment
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def web(doctor):
    return browser(doctor)


def text(response) -> str:
    return response.content.decode()


def field_error(page: str, field: str) -> str:
    """Return the error shown under a field (empty when none)."""
    marker = f'id="f-{field}-error">'
    if marker not in page:
        return ""
    return page.split(marker, 1)[1].split("<", 1)[0]


def local(dt) -> str:
    return timezone.localtime(dt).strftime("%Y-%m-%dT%H:%M")


# Patients ---------------------------------------------------------------------------------------

PATIENT = {"mrn": "W-1", "given_names": "Grace", "family_name": "Hopper", "birth_date": "1906-12-09",
           "sex": "female", "address_line": "1 Navy Way", "city": "Arlington", "country": "US"}


def test_register_patient(web):
    assert 'for="f-mrn"' in text(web.get("/patients/new/"))
    response = web.post("/patients/new/", PATIENT)
    row = PatientReadModel.objects.get(mrn="W-1")
    assert response.status_code == 302 and response["Location"] == f"/patients/{row.id}/"
    assert row.current_data["address"]["city"] == "Arlington"
    assert "Patient registered." in text(web.get(response["Location"]))


def test_register_refusals_name_their_field(web, registered):
    before = StoredEvent.objects.count()
    response = web.post("/patients/new/", {**PATIENT, "mrn": "MRN-1"})
    page = text(response)
    assert response.status_code == 422 and "already used" in field_error(page, "mrn")
    assert 'aria-invalid="true" aria-describedby="f-mrn-error"' in page
    assert 'value="Grace"' in page  # what was typed is kept
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    page = text(web.post("/patients/new/", {**PATIENT, "birth_date": tomorrow}))
    assert field_error(page, "birth_date")
    page = text(web.post("/patients/new/", {**PATIENT, "birth_date": "12/09/1906"}))
    assert "YYYY-MM-DD" in field_error(page, "birth_date")
    page = text(web.post("/patients/new/", {**PATIENT, "given_names": ""}))
    assert field_error(page, "given_names")
    assert StoredEvent.objects.count() == before


def test_all_missing_required_fields_are_shown_at_once(web):
    before = StoredEvent.objects.count()
    response = web.post("/patients/new/", {"given_names": "Grace"})
    page = text(response)
    assert response.status_code == 422
    for name, label in (("mrn", "MRN"), ("family_name", "Family name"),
                        ("birth_date", "Birth date")):
        assert field_error(page, name) == f"{label} is required."
        assert f'<a href="#f-{name}">{label} is required.</a>' in page  # the summary links to it
    assert not field_error(page, "given_names") and 'value="Grace"' in page
    assert re.search(r'<input id="f-mrn"[^>]* autofocus', page)  # focus goes to the first one
    assert page.count(" autofocus") == 1
    assert StoredEvent.objects.count() == before


def test_service_messages_use_the_fields_label(web):
    page = text(web.post("/patients/new/", {**PATIENT, "email": "not-an-email"}))
    assert field_error(page, "email").startswith("Email: ")


def test_update_patient_and_version_conflict(web, doctor, doctor_ctx, registered):
    doctor.first_name, doctor.last_name = "Gregory", "House"
    doctor.save()
    form = text(web.get(f"/patients/{registered}/edit/"))
    assert 'name="version" value="1"' in form and 'value="Lovelace"' in form
    fields = {"mrn": "MRN-1", "given_names": "Ada", "family_name": "King", "birth_date": "1980-12-10",
              "sex": "female", "phone": "+44 1", "version": "1"}
    response = web.post(f"/patients/{registered}/edit/", fields)
    assert response.status_code == 302
    row = PatientReadModel.objects.get(id=registered)
    assert (row.family_name, row.current_data["phone"], row.version) == ("King", "+44 1", 2)
    # Someone else saves in between: the stale form is refused and says who changed it, when.
    update_patient(doctor_ctx, registered, {"phone": "+44 2"}, expected_version=2)
    response = web.post(f"/patients/{registered}/edit/", {**fields, "phone": "+44 3", "version": "2"})
    page = text(response)
    assert response.status_code == 409
    last = StoredEvent.objects.filter(aggregate_id=registered).order_by("-version").first()
    at = timezone.localtime(last.timestamp).strftime("%H:%M")
    assert f"changed by Gregory House (dr_house) at {at} (PatientUpdated)" in page
    assert f'<a href="/patients/{registered}/edit/">Reload the form</a>' in page
    assert PatientReadModel.objects.get(id=registered).current_data["phone"] == "+44 2"


def test_update_with_nothing_changed_writes_nothing(web, registered):
    fields = {"mrn": "MRN-1", "given_names": "Ada", "family_name": "Lovelace",
              "birth_date": "1980-12-10", "sex": "female", "version": "1"}
    assert web.post(f"/patients/{registered}/edit/", fields).status_code == 302
    assert PatientReadModel.objects.get(id=registered).version == 1


# Vitals, diagnoses, prescriptions ---------------------------------------------------------------

def test_record_vitals(web, registered):
    response = web.post(f"/patients/{registered}/vitals/new/",
                        {"systolic": "132", "diastolic": "84", "heart_rate": "71",
                         "temperature_c": "36.9"})
    assert response.status_code == 302 and response["Location"] == f"/patients/{registered}/#vitals"
    assert LatestVitalSign.objects.get(patient_id=registered, measure="systolic").value == 132
    assert "132/84" in text(web.get(f"/patients/{registered}/"))


@pytest.mark.parametrize(("values", "field", "words"), [
    ({"systolic": "120", "diastolic": "130"}, "diastolic", "lower than systolic"),
    ({"heart_rate": "900"}, "heart_rate", "between"),
    ({"heart_rate": "fast"}, "heart_rate", "whole number"),
    ({"temperature_c": "98.6"}, "temperature_c", "between"),
    ({"systolic": "120"}, "diastolic", "together"),
])
def test_vitals_refused_next_to_the_field(web, registered, values, field, words):
    before = StoredEvent.objects.count()
    response = web.post(f"/patients/{registered}/vitals/new/", values)
    assert response.status_code == 422
    assert words in field_error(text(response), field)
    assert StoredEvent.objects.count() == before


def test_vitals_with_no_values_is_refused_above_the_form(web, registered):
    response = web.post(f"/patients/{registered}/vitals/new/", {})
    assert response.status_code == 422 and "at least one vital sign" in text(response)


def test_vitals_in_the_future_is_refused(web, registered):
    later = local(timezone.now() + timedelta(days=1))
    page = text(web.post(f"/patients/{registered}/vitals/new/",
                         {"measured_at": later, "heart_rate": "70"}))
    assert field_error(page, "measured_at")


def test_nurse_records_vitals_but_may_not_diagnose(system, clinic, registered):
    nurse = browser(make_staff(system, clinic, "nurse_joy", "nurse"))
    assert nurse.post(f"/patients/{registered}/vitals/new/", {"heart_rate": "70"}).status_code == 302
    response = nurse.post(f"/patients/{registered}/diagnoses/new/",
                          {"code_system": "SNOMED CT", "code": "38341003", "display": "Hypertension"})
    assert response.status_code == 422 and "only a doctor" in text(response)


def test_add_diagnosis(web, registered):
    response = web.post(f"/patients/{registered}/diagnoses/new/",
                        {"code_system": "SNOMED CT", "code": "38341003", "display": "Hypertension",
                         "clinical_status": "active", "onset_date": "2020-01-01"})
    assert response.status_code == 302
    assert "Hypertension" in text(web.get(f"/patients/{registered}/"))
    page = text(web.post(f"/patients/{registered}/diagnoses/new/",
                         {"code_system": "ICD-10", "code": "not a code!", "display": "X"}))
    assert field_error(page, "code")


def test_prescribe_approve_and_discontinue(system, clinic, web, registered):
    response = web.post(f"/patients/{registered}/prescriptions/new/",
                        {"drug_code": "314076", "drug_name": "Lisinopril", "dose": "10 mg",
                         "route": "oral", "frequency": "daily", "needs_approval": "on"})
    assert response.status_code == 302
    page = text(web.get(f"/patients/{registered}/"))
    # The prescriber may not approve their own: no button for them, and the service refuses.
    assert "awaiting approval by another doctor" in page and "/approve/" not in page
    prescription_id = re.search(r"/prescriptions/([0-9a-f-]{36})/discontinue/", page).group(1)
    url = f"/patients/{registered}/prescriptions/{prescription_id}/approve/"
    response = web.post(url, {"version": "1"}, follow=True)
    assert "another doctor than its prescriber" in text(response)
    colleague = browser(make_staff(system, clinic, "dr_wilson"))
    assert url in text(colleague.get(f"/patients/{registered}/"))
    assert colleague.post(url, {"version": "1"}).status_code == 302
    assert "awaiting approval" not in text(web.get(f"/patients/{registered}/"))
    # Discontinue: the reason is required; a stale version is a conflict.
    stop = f"/patients/{registered}/prescriptions/{prescription_id}/discontinue/"
    assert 'name="version" value="2"' in text(web.get(stop))
    assert field_error(text(web.post(stop, {"reason": "", "version": "2"})), "reason")
    response = web.post(stop, {"reason": "cough", "version": "1"})
    assert response.status_code == 409 and "changed by dr_wilson" in text(response)
    assert web.post(stop, {"reason": "cough", "version": "2"}).status_code == 302
    assert "Lisinopril" not in text(web.get(f"/patients/{registered}/"))


def test_approve_with_a_stale_version_explains_the_conflict(system, clinic, web, doctor_ctx,
                                                            registered):
    result = clinical.prescribe_medication(
        doctor_ctx, patient_id=registered, drug_code="1", drug_name="Drug", dose="1", route="oral",
        frequency="daily", needs_approval=True)
    clinical.discontinue_medication(doctor_ctx, result.aggregate_id, reason="changed mind")
    colleague = browser(make_staff(system, clinic, "dr_wilson"))
    response = colleague.post(
        f"/patients/{registered}/prescriptions/{result.aggregate_id}/approve/", {"version": "1"},
        follow=True)
    assert "changed by dr_house at" in text(response)


# Labs -------------------------------------------------------------------------------------------

def test_order_a_lab_and_record_its_result(web, registered):
    response = web.post(f"/patients/{registered}/labs/new/",
                        {"loinc_code": "2345-7", "display": "Glucose", "priority": "routine"})
    assert response.status_code == 302
    page = text(web.get(f"/patients/{registered}/"))
    assert "Glucose" in page and "Record result" in page
    result_url = re.search(r'href="(/patients/[^"]+/labs/[^"]+/result/)"', page).group(1)
    form = text(web.get(result_url))
    assert "Glucose (2345-7)" in form
    response = web.post(result_url, {"loinc_code": "2345-7", "value": "13.2", "unit": "mmol/L",
                                     "reference_low": "3.9", "reference_high": "5.6",
                                     "version": "1"})
    assert response.status_code == 302
    row = LabResultReadModel.objects.get(patient_id=registered)
    assert (row.value, row.abnormal_flag) == (13.2, "H")
    assert 'class="flag flag-H"' in text(web.get(f"/patients/{registered}/"))


def test_lab_refusals(web, doctor_ctx, registered):
    page = text(web.post(f"/patients/{registered}/labs/new/", {"loinc_code": "glucose",
                                                               "display": "Glucose"}))
    assert field_error(page, "loinc_code")
    order = labs.place_lab_order(doctor_ctx, registered,
                                 tests=[{"loinc_code": "2345-7", "display": "Glucose"}])
    url = f"/patients/{registered}/labs/{order.aggregate_id}/result/"
    page = text(web.post(url, {"loinc_code": "2345-7", "value": "many", "version": "1"}))
    assert "number" in field_error(page, "value")
    assert not LabResultReadModel.objects.filter(patient_id=registered).exists()


# Notes ------------------------------------------------------------------------------------------

def test_write_sign_and_amend_a_note(web, registered):
    response = web.post(f"/patients/{registered}/notes/new/",
                        {"subjective": "Tired", "assessment": "Anaemia?", "plan": "FBC"})
    assert response.status_code == 302
    page = text(web.get(f"/patients/{registered}/"))
    assert "Draft note" in page and "Tired" in page
    note_id = re.search(r"/notes/([0-9a-f-]{36})/sign/", page).group(1)
    assert web.post(f"/patients/{registered}/notes/{note_id}/sign/", {"version": "1"}).status_code == 302
    page = text(web.get(f"/patients/{registered}/"))
    assert "Signed note" in page and f"/notes/{note_id}/amend/" in page
    amend = f"/patients/{registered}/notes/{note_id}/amend/"
    assert field_error(text(web.post(amend, {"amendment": "Ferritin low", "reason": "",
                                             "version": "2"})), "reason")
    assert web.post(amend, {"amendment": "Ferritin low", "reason": "result came back",
                            "version": "2"}).status_code == 302
    assert "Ferritin low" in text(web.get(f"/patients/{registered}/"))


def test_signing_twice_says_why(web, doctor_ctx, registered):
    note = clinical.draft_note(doctor_ctx, patient_id=registered, subjective="x")
    clinical.sign_note(doctor_ctx, note.aggregate_id)
    response = web.post(f"/patients/{registered}/notes/{note.aggregate_id}/sign/", {}, follow=True)
    assert 'class="error"' in text(response)


# Appointments -----------------------------------------------------------------------------------

def test_schedule_and_check_in(web, doctor, registered):
    starts = timezone.now() + timedelta(days=1)
    form = text(web.get(f"/patients/{registered}/appointments/new/"))
    assert f'<option value="{doctor.pk}" selected>' in form
    response = web.post(f"/patients/{registered}/appointments/new/",
                        {"provider_id": str(doctor.pk), "starts_at": local(starts),
                         "duration_minutes": "20", "kind": "follow_up", "reason": "BP check"})
    assert response.status_code == 302
    row = AppointmentReadModel.objects.get(patient_id=registered)
    assert row.status == "scheduled" and row.kind == "follow_up"
    # The same slot again clashes, and says so.
    response = web.post(f"/patients/{registered}/appointments/new/",
                        {"provider_id": str(doctor.pk), "starts_at": local(starts),
                         "duration_minutes": "20"})
    assert response.status_code == 422 and "form-error" in text(response)
    assert web.post(f"/patients/{registered}/appointments/{row.id}/check-in/",
                    {"version": str(row.version)}).status_code == 302
    assert AppointmentReadModel.objects.get(id=row.id).status == "checked_in"


def test_schedule_refusals(web, doctor_ctx, doctor, registered):
    page = text(web.post(f"/patients/{registered}/appointments/new/",
                         {"provider_id": str(doctor.pk), "starts_at": ""}))
    assert field_error(page, "starts_at")
    page = text(web.post(f"/patients/{registered}/appointments/new/",
                         {"provider_id": "999999", "starts_at": local(timezone.now())}))
    assert field_error(page, "provider_id")
    assert not AppointmentReadModel.objects.filter(patient_id=registered).exists()


def test_check_in_conflict_names_who_changed_it(web, doctor_ctx, doctor, registered):
    result = schedule_appointment(doctor_ctx, patient_id=registered, provider_id=doctor.pk,
                                  starts_at=timezone.now() + timedelta(hours=3), duration_minutes=15)
    from medflow.scheduling.services import reschedule_appointment

    reschedule_appointment(doctor_ctx, result.aggregate_id,
                           starts_at=timezone.now() + timedelta(hours=5), duration_minutes=15)
    response = web.post(f"/patients/{registered}/appointments/{result.aggregate_id}/check-in/",
                        {"version": "1"}, follow=True)
    assert "changed by dr_house at" in text(response)


def test_forms_of_another_clinics_patient_are_not_found(system, other_clinic, registered):
    stranger = browser(make_staff(system, other_clinic, "stranger"))
    for path in ("vitals/new/", "diagnoses/new/", "notes/new/", "edit/", "appointments/new/"):
        assert stranger.get(f"/patients/{registered}/{path}").status_code == 404, path
    before = StoredEvent.objects.count()
    assert stranger.post(f"/patients/{registered}/vitals/new/", {"heart_rate": "70"}).status_code == 404
    assert StoredEvent.objects.count() == before
