"""The clinician web UI through Django's test client: every page, its scoping and its access log."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from medflow.access.services import break_glass
from medflow.audit.chain import record_reads
from medflow.audit.models import AccessLogEntry
from medflow.clinical import services as clinical
from medflow.context import Context
from medflow.labs import services as labs
from medflow.patients.services import register_patient, update_patient
from medflow.scheduling.services import schedule_appointment
from medflow.work.services import assign_task, raise_alert
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db
User = get_user_model()


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def web(doctor):
    return browser(doctor)


def text(response) -> str:
    return response.content.decode()


def reads_of(patient_id) -> list[AccessLogEntry]:
    return list(AccessLogEntry.objects.filter(patient_id=patient_id))


# Login, logout, session -------------------------------------------------------------------------

def test_pages_need_a_login():
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/")
    assert Client().get("/patients/").status_code == 302


def test_login_page_and_logout(doctor):
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200
    assert '<label for="id_username">' in text(page) and 'autocomplete="current-password"' in text(page)
    client.force_login(doctor)
    assert client.get("/").status_code == 200
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused_on_the_page(doctor):
    client = Client()
    response = client.post("/login/", {"username": doctor.username, "password": "nope"})
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert 'role="alert"' in text(response)
    assert client.get("/").status_code == 302


def test_login_with_password(doctor):
    client = Client()
    response = client.post("/login/?next=/patients/", {"username": doctor.username,
                                                       "password": "pw-for-tests-1",
                                                       "next": "/patients/"})
    assert response.status_code == 302 and response["Location"] == "/patients/"
    assert client.get("/patients/").status_code == 200


def test_login_asks_the_second_factor_of_users_who_have_one(doctor):
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=doctor, name="default", confirmed=True)
    credentials = {"username": doctor.username, "password": "pw-for-tests-1"}
    client = Client()
    response = client.post("/login/", credentials)
    assert response.status_code == 200 and "one-time code" in text(response)
    assert client.get("/").status_code == 302
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    response = client.post("/login/", {**credentials, "otp": code})
    assert response.status_code == 302 and client.get("/").status_code == 200
    # A wrong code is refused (and counted as a failed login).
    other = Client()
    response = other.post("/login/", {**credentials, "otp": f"{(int(code) + 1) % 10**6:06d}"})
    assert response.status_code == 200 and other.get("/").status_code == 302


def test_sessions_expire_after_idle_minutes():
    assert settings.SESSION_COOKIE_AGE == settings.MEDFLOW_SESSION_IDLE_MINUTES * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.LOGIN_URL == "/login/"


def test_root_is_the_dashboard_not_the_api_docs(web):
    response = web.get("/")
    assert response.status_code == 200 and "Dashboard" in text(response)


# Clinic switcher --------------------------------------------------------------------------------

def test_clinic_switcher_scopes_the_context(system, clinic, other_clinic, doctor, doctor_ctx):
    from medflow.access.services import grant_role

    grant_role(system, other_clinic.id, doctor.username, "nurse")
    here = register_patient(doctor_ctx, clinic_id=clinic.id, mrn="S-1", given_names="Here",
                            family_name="Only", birth_date="1970-01-01").aggregate_id
    web = browser(doctor)
    page = text(web.get("/"))
    assert 'id="clinic-switch"' in page and "choose a clinic" in page
    # Acting in the other clinic, as a nurse there: the first clinic's patient is not found.
    response = web.post("/clinic/", {"clinic_id": str(other_clinic.id), "next": "/patients/"})
    assert response.status_code == 302 and response["Location"] == "/patients/"
    assert web.session["medflow_clinic_id"] == str(other_clinic.id)
    assert "· nurse" in text(web.get("/"))
    assert web.get(f"/patients/{here}/").status_code == 404
    web.post("/clinic/", {"clinic_id": str(clinic.id)})
    assert "· doctor" in text(web.get("/"))
    assert web.get(f"/patients/{here}/").status_code == 200
    # A clinic the user does not work in is refused; an empty choice means all clinics.
    assert web.post("/clinic/", {"clinic_id": str(uuid.uuid4())}).status_code == 400
    web.post("/clinic/", {"clinic_id": ""})
    assert "medflow_clinic_id" not in web.session


def test_session_clinic_lost_membership_falls_back(system, clinic, other_clinic, doctor):
    web = browser(doctor)
    session = web.session
    session["medflow_clinic_id"] = str(other_clinic.id)  # not (or no longer) theirs
    session.save()
    response = web.get("/patients/")
    assert response.status_code == 302 and "medflow_clinic_id" not in web.session


def test_an_api_header_wins_over_the_session(web, clinic, registered):
    session = web.session
    session["medflow_clinic_id"] = str(clinic.id)
    session.save()
    response = web.get(f"/api/patients/{registered}", HTTP_X_CLINIC_ID="not-a-uuid")
    assert response.status_code == 422


# Dashboard --------------------------------------------------------------------------------------

def test_dashboard_shows_the_day_tasks_and_alerts(web, doctor, doctor_ctx, registered, clinic):
    starts = timezone.localtime().replace(hour=23, minute=0, second=0, microsecond=0)
    if starts <= timezone.now():
        pytest.skip("too late in the day to book a slot today")
    schedule_appointment(doctor_ctx, patient_id=registered, provider_id=doctor.pk, starts_at=starts,
                         duration_minutes=30, reason="Knee pain review")
    assign_task(doctor_ctx, assignee_id=doctor.pk, clinic_id=clinic.id, title="Call the lab back")
    raise_alert(doctor_ctx, severity="critical", message="Potassium 6.9", patient_id=registered)
    page = text(web.get("/"))
    assert "Lovelace, Ada" in page and "Knee pain review" in page and "23:00" in page
    assert "Call the lab back" in page and "Potassium 6.9" in page
    assert reads_of(registered)  # the names shown are in the access log


def test_dashboard_of_a_receptionist_has_no_day(system, clinic):
    desk = make_staff(system, clinic, "desk", "receptionist")
    page = text(browser(desk).get("/"))
    assert "No appointments today." in page


# Search -----------------------------------------------------------------------------------------

def test_search_by_name_mrn_and_birth_date(web, registered):
    for q in ("ada", "love", "MRN-1", "1980-12-10"):
        response = web.get("/patients/", {"q": q})
        assert response.status_code == 200 and "Lovelace, Ada" in text(response), q
    assert "No patient matches" in text(web.get("/patients/", {"q": "zzz"}))
    assert "No patient matches" in text(web.get("/patients/", {"q": "1980-12-11"}))
    assert reads_of(registered)


def test_search_fragment_for_results_as_you_type(web, registered):
    response = web.get("/patients/results/", {"q": "lov"})
    body = text(response)
    assert response.status_code == 200 and "<html" not in body
    assert f'href="/patients/{registered}/"' in body
    assert web.get("/patients/results/", {"q": ""}).content.strip() == b""
    page = text(web.get("/patients/"))
    assert 'data-live-search="results"' in page and 'data-url="/patients/results/"' in page


def test_search_stays_in_the_callers_clinics(system, other_clinic, registered):
    stranger = make_staff(system, other_clinic, "stranger")
    assert "Lovelace" not in text(browser(stranger).get("/patients/", {"q": "ada"}))
    assert "Lovelace" not in text(browser(stranger).get("/patients/", {"q": "1980-12-10"}))


# The chart --------------------------------------------------------------------------------------

@pytest.fixture
def full_record(doctor_ctx, registered):
    """A patient with a problem, a medication, two sets of vitals, labs and a signed note."""
    past = timezone.now() - timedelta(days=30)
    clinical.record_vital_signs(doctor_ctx, patient_id=registered, measured_at=past, systolic=150,
                                diastolic=95, heart_rate=88, weight_kg=80.5, temperature_c=37.9)
    clinical.record_vital_signs(doctor_ctx, patient_id=registered, systolic=128, diastolic=82,
                                heart_rate=70, weight_kg=79.0, temperature_c=36.8)
    clinical.add_diagnosis(doctor_ctx, patient_id=registered, code_system="SNOMED CT",
                           code="38341003", display="Hypertension")
    clinical.prescribe_medication(doctor_ctx, patient_id=registered, drug_code="314076",
                                  drug_name="Lisinopril 10 MG", dose="10 mg", route="oral",
                                  frequency="daily")
    order = labs.place_lab_order(doctor_ctx, registered,
                                 tests=[{"loinc_code": "2823-3", "display": "Potassium"}])
    for when, value in ((past, 4.1), (timezone.now(), 5.9)):
        labs.record_lab_result(doctor_ctx, order.aggregate_id, loinc_code="2823-3",
                               display="Potassium", value=value, unit="mmol/L", reference_low=3.5,
                               reference_high=5.1, effective_at=when)
    note = clinical.draft_note(doctor_ctx, patient_id=registered, subjective="Headaches",
                               plan="Start lisinopril")
    clinical.sign_note(doctor_ctx, note.aggregate_id)
    return registered


def test_chart_shows_the_whole_record(web, full_record):
    response = web.get(f"/patients/{full_record}/")
    page = text(response)
    assert response.status_code == 200
    assert "MRN MRN-1" in page and "1980-12-10" in page
    assert "Hypertension" in page and "Lisinopril 10 MG" in page
    assert "128/82" in page and "150/95" in page
    assert "Potassium" in page and 'class="flag flag-H"' in page  # 5.9 above 5.1: abnormal
    assert "Headaches" in page and "Signed note" in page
    assert reads_of(full_record)[-1].action == f"GET /patients/{full_record}/"


def test_chart_draws_accessible_svg_charts(web, full_record):
    page = text(web.get(f"/patients/{full_record}/"))
    assert page.count("<svg") >= 5  # BP, HR, weight, temperature, potassium
    assert '<title id="chart-title-' in page and "<desc id=" in page and 'role="img"' in page
    assert "Blood pressure" in page and "Systolic: 2 values" in page
    assert 'class="band"' in page  # the potassium reference range


def test_chart_as_of_shows_the_record_before_a_change(web, doctor_ctx, full_record):
    before = timezone.localtime()
    clinical.record_vital_signs(doctor_ctx, patient_id=full_record, systolic=181, diastolic=111)
    now_page = text(web.get(f"/patients/{full_record}/"))
    assert "181/111" in now_page and "Historical view" not in now_page
    response = web.get(f"/patients/{full_record}/", {"as_of": before.strftime("%Y-%m-%dT%H:%M:%S.%f")})
    page = text(response)
    assert response.status_code == 200
    assert "Historical view" in page and "181/111" not in page and "128/82" in page
    assert "Record vitals" not in page  # no changes in the past


def test_chart_as_of_before_registration_and_in_the_future(web, registered):
    assert web.get(f"/patients/{registered}/", {"as_of": "2001-01-01T00:00"}).status_code == 404
    future = (timezone.localtime() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    assert web.get(f"/patients/{registered}/", {"as_of": future}).status_code == 400
    assert web.get(f"/patients/{registered}/", {"as_of": "yesterday"}).status_code == 400


def test_chart_of_another_clinics_patient_is_not_found(system, other_clinic, registered):
    stranger = make_staff(system, other_clinic, "stranger")
    assert browser(stranger).get(f"/patients/{registered}/").status_code == 404
    assert browser(stranger).get(f"/patients/{uuid.uuid4()}/").status_code == 404


def test_receptionist_sees_demographics_and_appointments_only(system, clinic, full_record):
    desk = make_staff(system, clinic, "desk", "receptionist")
    page = text(browser(desk).get(f"/patients/{full_record}/"))
    assert "Lovelace" in page and "Appointments" in page
    assert "Hypertension" not in page and "Potassium" not in page and "<svg" not in page


# Timeline, history, audit -----------------------------------------------------------------------

def test_timeline_newest_first_with_who_and_filter(web, full_record):
    page = text(web.get(f"/patients/{full_record}/timeline/"))
    assert "dr_house" in page and "(doctor)" in page
    assert page.index("BP 128/82") < page.index("BP 150/95")  # newest first
    vitals = text(web.get(f"/patients/{full_record}/timeline/", {"kind": "vitals"}))
    assert "BP 128/82" in vitals and "Hypertension" not in vitals
    assert web.get(f"/patients/{full_record}/timeline/", {"kind": "nonsense"}).status_code == 400


def test_timeline_as_of(web, doctor_ctx, registered):
    before = timezone.localtime()
    clinical.record_vital_signs(doctor_ctx, patient_id=registered, heart_rate=99)
    page = text(web.get(f"/patients/{registered}/timeline/",
                        {"as_of": before.strftime("%Y-%m-%dT%H:%M:%S.%f")}))
    assert "HR 99" not in page and "Historical view" in page


def test_demographics_diff_between_two_times(web, doctor_ctx, registered):
    middle = timezone.localtime()
    update_patient(doctor_ctx, registered, {"phone": "+44 20 7946 0000", "family_name": "King"},
                   expected_version=1)
    response = web.get(f"/patients/{registered}/history/",
                       {"before": middle.strftime("%Y-%m-%dT%H:%M:%S.%f")})
    page = text(response)
    assert response.status_code == 200
    assert '<tr class="changed"><th scope="row">family name' in page and "Lovelace" in page
    assert "+44 20 7946 0000" in page and '<tr><th scope="row">mrn' in page
    assert "PatientUpdated" in page and "PatientRegistered" in page


def test_audit_view_for_admins_with_break_glass_highlighted(system, clinic, web, registered):
    admin = make_staff(system, clinic, "auditor", "admin")
    web.get(f"/patients/{registered}/")
    other = Context(user_id=None, username="visiting_dr", role="doctor", reads=[])
    record_reads(other, "GET /api/patients/x", [(registered, clinic.id, True)])
    response = browser(admin).get(f"/patients/{registered}/audit/")
    page = text(response)
    assert response.status_code == 200
    assert "dr_house" in page and f"GET /patients/{registered}/" in page
    assert '<tr class="breakglass">' in page and "visiting_dr" in page and "BREAK-GLASS" in page
    assert "Break-glass grants" not in page  # none was granted: the read above was made up
    only = text(browser(admin).get(f"/patients/{registered}/audit/", {"break_glass": "1"}))
    assert "visiting_dr" in only and "dr_house" not in only.split("Who accessed")[1]
    assert "Access log" in text(browser(admin).get(f"/patients/{registered}/"))


def test_history_from_before_the_registration_shows_an_empty_before(web, registered):
    before = timezone.localtime() - timedelta(days=1)
    response = web.get(f"/patients/{registered}/history/",
                       {"before": before.strftime("%Y-%m-%dT%H:%M:%S")})
    page = text(response)
    assert response.status_code == 200
    assert '<tr class="changed"><th scope="row">family name' in page and "Lovelace" in page
    assert "not registered yet" in page


# Every page that shows a patient puts the read in the access log, once per request.
PATIENT_PAGES = ("", "timeline/", "history/", "edit/", "vitals/new/", "diagnoses/new/",
                 "prescriptions/new/", "labs/new/", "notes/new/", "appointments/new/")


@pytest.mark.parametrize("suffix", PATIENT_PAGES)
def test_each_patient_page_logs_the_read(web, registered, suffix):
    path = f"/patients/{registered}/{suffix}"
    assert web.get(path).status_code == 200
    logged = [e for e in reads_of(registered) if e.action == f"GET {path}"]
    assert len(logged) == 1 and logged[0].username == "dr_house"


@pytest.mark.parametrize("query", ["Lovelace", "MRN-1", "1980-12-10"])
def test_search_pages_log_the_patients_they_list(web, registered, query):
    for path in ("/patients/", "/patients/results/"):
        assert "Lovelace" in text(web.get(path, {"q": query}))
        assert [e for e in reads_of(registered) if e.action == f"GET {path}"]


def test_audit_view_lists_break_glass_grants_and_their_reason(system, clinic, other_clinic,
                                                              registered):
    visitor = make_staff(system, other_clinic, "visiting_dr", "doctor")
    ctx = Context(user_id=visitor.pk, username="visiting_dr", role="doctor",
                  clinic_ids=frozenset({other_clinic.id}))
    break_glass(ctx, registered, reason="Unconscious in the ER")
    assert "Lovelace" in text(browser(visitor).get(f"/patients/{registered}/"))
    admin = make_staff(system, clinic, "auditor", "admin")
    page = text(browser(admin).get(f"/patients/{registered}/audit/"))
    grants, log = page.split("Who accessed", 1)
    assert "Break-glass grants (1)" in grants and "Unconscious in the ER" in grants
    row = next(r for r in log.split("<tr")[1:] if "visiting_dr" in r)
    assert 'class="breakglass"' in row and "Unconscious in the ER" in row


def test_audit_view_logs_the_admins_read(system, clinic, registered):
    admin = make_staff(system, clinic, "auditor", "admin")
    assert browser(admin).get(f"/patients/{registered}/audit/").status_code == 200
    assert [e for e in reads_of(registered) if e.username == "auditor"]


def test_chart_offers_only_the_actions_the_role_may_take(system, clinic, registered):
    doctor_page = text(browser(User.objects.get(username="dr_house")).get(f"/patients/{registered}/"))
    for action in ("Record vitals", "Add diagnosis", "Prescribe", "Order lab", "Write note",
                   "Schedule", "Edit demographics"):
        assert f">{action}</a>" in doctor_page
    nurse = text(browser(make_staff(system, clinic, "nurse", "nurse")).get(f"/patients/{registered}/"))
    assert ">Record vitals</a>" in nurse and ">Write note</a>" in nurse
    assert ">Prescribe</a>" not in nurse and ">Order lab</a>" not in nurse
    admin = text(browser(make_staff(system, clinic, "auditor", "admin")).get(f"/patients/{registered}/"))
    assert ">Record vitals</a>" not in admin and ">Prescribe</a>" not in admin
    assert ">Access log</a>" in admin and ">Access log</a>" not in doctor_page


def test_audit_view_is_refused_to_clinicians(web, registered):
    response = web.get(f"/patients/{registered}/audit/")
    assert response.status_code == 403 and "admin" in text(response)
