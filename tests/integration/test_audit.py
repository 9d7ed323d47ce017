"""Every read of patient data is in the access log: hash-chained, append-only, admin-readable."""

import importlib

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client

from medflow.access.tokens import create_token
from medflow.audit.chain import check_chain
from medflow.audit.models import AccessLogEntry
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(doctor):
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_token(doctor)[1]}")


@pytest.fixture
def admin_api(system, clinic):
    admin = make_staff(system, clinic, "auditor", "admin")
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_token(admin)[1]}")


def test_each_read_writes_an_entry_with_who_what_when(api, doctor, clinic, registered):
    assert api.get(f"/api/patients/{registered}", HTTP_X_REQUEST_ID="req-1").status_code == 200
    api.get(f"/api/patients/{registered}/history")
    api.get(f"/api/patients/{registered}/timeline")
    api.get("/api/patients", {"q": "ada"})
    entries = list(AccessLogEntry.objects.order_by("id"))
    assert [e.action for e in entries] == [
        f"GET /api/patients/{registered}", f"GET /api/patients/{registered}/history",
        f"GET /api/patients/{registered}/timeline", "GET /api/patients",
    ]
    first = entries[0]
    assert (first.username, first.role, first.clinic_id, first.patient_id) == (
        "dr_house", "doctor", clinic.id, registered)
    assert first.request_id == "req-1" and first.client_ip == "127.0.0.1" and not first.break_glass


def test_refused_reads_are_not_logged_as_reads(api, system, other_clinic):
    from medflow.patients.services import register_patient

    foreign = register_patient(system, clinic_id=other_clinic.id, mrn="F", given_names="F",
                               family_name="F", birth_date="2000-01-01").aggregate_id
    assert api.get(f"/api/patients/{foreign}").status_code == 404
    assert AccessLogEntry.objects.count() == 0


def test_admins_read_the_access_log_others_may_not(api, admin_api, registered):
    api.get(f"/api/patients/{registered}")
    denied = api.get(f"/api/patients/{registered}/access-log")
    assert denied.status_code == 403
    log = admin_api.get(f"/api/patients/{registered}/access-log").json()
    assert [i["username"] for i in log["items"]][-1] == "dr_house"
    assert log["count"] == 1  # the admin's own look is logged by this very request, after it


def test_the_log_is_append_only_and_tampering_breaks_the_chain(api, registered):
    for _ in range(3):
        api.get(f"/api/patients/{registered}")
    assert list(check_chain()) == []
    entry = AccessLogEntry.objects.order_by("id").first()
    with pytest.raises(DatabaseError), transaction.atomic():
        AccessLogEntry.objects.filter(pk=entry.pk).update(username="nobody")
    with pytest.raises(DatabaseError), transaction.atomic():
        AccessLogEntry.objects.filter(pk=entry.pk).delete()
    call_command("verify", "--store-only")
    # Someone with the power to drop the triggers still cannot hide an edit from verify.
    triggers = importlib.import_module("medflow.audit.migrations.0002_append_only")
    with connection.schema_editor() as editor:
        triggers.backwards(None, editor)
    try:
        AccessLogEntry.objects.filter(pk=entry.pk).update(username="nobody")
        last = AccessLogEntry.objects.order_by("-id").first()
        AccessLogEntry.objects.filter(pk=last.pk).delete()
        problems = [(v.subject, v.detail.split(":")[0]) for v in check_chain()]
        assert (f"access_log {entry.pk}", "hash mismatch") in problems
        assert ("access_log head", f"head says 3 entries ending {last.hash[:12]}, found 2 ending "
                f"{AccessLogEntry.objects.order_by('-id').first().hash[:12]}") in [
            (v.subject, v.detail.split(":")[0]) for v in check_chain()]
        with pytest.raises(CommandError):
            call_command("verify", "--store-only")
    finally:
        with connection.schema_editor() as editor:
            triggers.forwards(None, editor)


def test_schedule_and_work_lists_log_the_patients_they_show(api, doctor, doctor_ctx, registered):
    from datetime import UTC, datetime, timedelta

    from medflow.scheduling.services import schedule_appointment
    from medflow.work.services import assign_task

    day = (datetime.now(UTC) + timedelta(days=30)).date()
    booked = schedule_appointment(doctor_ctx, patient_id=registered, provider_id=doctor.pk,
                                  starts_at=f"{day}T09:00:00+00:00", duration_minutes=20)
    task = assign_task(doctor_ctx, assignee_id=doctor.pk, patient_id=registered,
                       title="Call back with results")
    assert AccessLogEntry.objects.count() == 0
    paths = [f"/api/providers/{doctor.pk}/day?date={day}&tz=UTC",
             f"/api/appointments/{booked.aggregate_id}", "/api/tasks",
             f"/api/tasks/{task.aggregate_id}"]
    for path in paths:
        assert api.get(path).status_code == 200, path
    entries = list(AccessLogEntry.objects.order_by("id"))
    # One entry per request: the same patient read twice in a request is logged once.
    assert [(e.action, e.patient_id) for e in entries] == [
        (f"GET {path.partition('?')[0]}", registered) for path in paths]
