"""Personal data sealed in events with per-patient keys; forgetting; retention; key rotation."""

import base64
import os
import subprocess
import sys
import uuid

import pytest
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from medflow.access.domain import ClinicCreated
from medflow.access.tokens import create_token
from medflow.context import system_context
from medflow.errors import InvalidInput, RuleViolated, VersionConflict
from medflow.eventstore import crypto, store
from medflow.eventstore.cache import cache
from medflow.eventstore.commands import cache_key
from medflow.eventstore.models import DataKey, Snapshot, StoredEvent
from medflow.patients.services import register_patient, update_patient
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_NAME = "Quixotic"


@pytest.fixture
def zelda(clinic):
    ctx = system_context("t")
    patient_id = register_patient(
        ctx, clinic_id=clinic.id, mrn="Z-777", given_names="Zelda", family_name=SECRET_NAME,
        birth_date="1977-07-07", phone="+1 555 0177", email="zelda@example.org",
        address={"lines": ["7 Hidden Lane"], "city": "Secretville"},
    ).aggregate_id
    update_patient(ctx, patient_id, {"family_name": SECRET_NAME + "-Lee"}, expected_version=1)
    return patient_id


@pytest.fixture
def admin_api(system, clinic):
    admin = make_staff(system, clinic, "root", "admin")
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_token(admin)[1]}")


def test_personal_fields_are_sealed_at_rest(zelda):
    raw = StoredEvent.objects.get(aggregate_id=zelda, version=1).event_data
    assert SECRET_NAME not in str(raw) and "Secretville" not in str(raw) and "1977" not in str(raw)
    assert raw["clinic_id"] == str(store.load(zelda)[0].event.clinic_id)
    assert "clinic_id" not in raw["_sealed"]["f"]  # not personal: in clear
    assert set(raw["_sealed"]["f"]) >= {"given_names", "family_name", "birth_date", "address"}
    assert store.load(zelda)[0].event.family_name == SECRET_NAME
    assert DataKey.objects.get(subject_id=zelda).wrapped_key


def test_a_ciphertext_moved_to_another_event_fails_its_integrity_check(zelda):
    first = StoredEvent.objects.get(aggregate_id=zelda, version=1)
    second = StoredEvent.objects.get(aggregate_id=zelda, version=2)
    StoredEvent.objects.filter(pk=second.pk).update(
        event_data={**second.event_data, "_sealed": first.event_data["_sealed"]})
    with pytest.raises(InvalidInput, match="integrity"):
        store.load(zelda)


def _tables_containing(text: str) -> list[str]:
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            if any(text in str(value) for row in cursor.fetchall() for value in row):
                found.append(table)
    return found


def test_forgetting_leaves_no_plaintext_anywhere(zelda, admin_api, settings):
    settings.MEDFLOW_SNAPSHOT_EVERY = 2
    update_patient(system_context("t"), zelda, {"phone": "+1 555 0178"}, expected_version=2)
    update_patient(system_context("t"), zelda, {"phone": "+1 555 0179"}, expected_version=3)
    assert Snapshot.objects.filter(aggregate_id=zelda).exists()
    assert _tables_containing(SECRET_NAME) == ["patient_read_model", "patient_timeline", "snapshots"]
    if connection.vendor == "postgresql":  # the name words of typo search, lower-cased
        assert "patient_name_word" in _tables_containing(SECRET_NAME.lower())
    response = admin_api.post(f"/api/patients/{zelda}/forget", {"reason": "GDPR request 42"},
                              content_type="application/json")
    assert response.status_code == 200, response.content
    assert _tables_containing(SECRET_NAME) == [] and _tables_containing(SECRET_NAME.lower()) == []
    assert _tables_containing("Secretville") == [] and _tables_containing("555 0177") == []
    assert not Snapshot.objects.filter(aggregate_id=zelda).exists()
    assert cache.get(cache_key("Patient", zelda)) is None
    assert DataKey.objects.get(subject_id=zelda).destroyed_at is not None
    # The events remain, versions continuous; personal fields read back as redacted.
    assert [e.version for e in store.load(zelda)] == [1, 2, 3, 4, 5]
    gone = admin_api.get(f"/api/patients/{zelda}")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "patient_forgotten"
    history = admin_api.get(f"/api/patients/{zelda}/history").json()
    assert history[0]["data"]["family_name"] == "[redacted]"
    assert "clinic_id" in history[0]["data"] and history[0]["data"]["clinic_id"] != "[redacted]"
    assert history[-1]["type"] == "PatientForgotten" and history[-1]["reason"] == "GDPR request 42"
    assert admin_api.get("/api/patients", {"q": "Zelda"}).json()["count"] == 0
    changed = admin_api.patch(f"/api/patients/{zelda}", {"phone": "1234"},
                              content_type="application/json", HTTP_IF_MATCH="5")
    assert changed.status_code == 422 and changed.json()["error"]["code"] == "patient_forgotten"
    from django.core.management import call_command

    call_command("projections", "rebuild", "--all")
    assert _tables_containing(SECRET_NAME) == [] and _tables_containing(SECRET_NAME.lower()) == []
    call_command("verify")  # raises CommandError on any violation


def test_only_admins_forget_and_a_reason_is_required(zelda, system, clinic):
    doctor = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(make_staff(system, clinic, 'doc'))[1]}")
    denied = doctor.post(f"/api/patients/{zelda}/forget", {"reason": "x"},
                         content_type="application/json")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
    admin = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(make_staff(system, clinic, 'adm', 'admin'))[1]}")
    blank = admin.post(f"/api/patients/{zelda}/forget", {"reason": ""},
                       content_type="application/json")
    assert blank.status_code == 422 and blank.json()["error"]["field"] == "reason"
    assert StoredEvent.objects.filter(aggregate_id=zelda).count() == 2


def test_retention_period_refuses_unless_overridden(zelda, admin_api, settings):
    settings.MEDFLOW_RETENTION_YEARS = {"Patient": 10}
    refused = admin_api.post(f"/api/patients/{zelda}/forget", {"reason": "asked"},
                             content_type="application/json")
    body = refused.json()["error"]
    assert refused.status_code == 422 and body["code"] == "retention_period"
    assert "Patient until" in body["message"] and body["field"] == "override_retention"
    assert DataKey.objects.get(subject_id=zelda).destroyed_at is None
    done = admin_api.post(f"/api/patients/{zelda}/forget",
                          {"reason": "court order", "override_retention": True},
                          content_type="application/json")
    assert done.status_code == 200
    assert store.load(zelda)[-1].event.retention_overridden is True


def test_cli_forget_patient(zelda):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="reason"):
        call_command("forget-patient", str(zelda), "--reason", " ")
    with pytest.raises(CommandError, match="not a UUID"):
        call_command("forget-patient", "nope", "--reason", "x")
    call_command("forget-patient", str(zelda), "--reason", "erasure request")
    assert DataKey.objects.get(subject_id=zelda).destroyed_at is not None


def _register(clinic, patient_id=None, mrn="K-1"):
    return register_patient(
        system_context("t"), clinic_id=clinic.id, patient_id=patient_id, mrn=mrn,
        given_names="Kim", family_name=SECRET_NAME, birth_date="1990-01-01",
    )


def test_a_registration_stores_its_subjects_new_key_in_the_appends_statement(clinic):
    with CaptureQueriesContext(connection) as queries:
        patient_id = _register(clinic).aggregate_id
    touching_keys = [q["sql"] for q in queries if "data_keys" in q["sql"]]
    if connection.vendor == "postgresql":
        # One statement stores the key, claims the stream and inserts the event.
        assert len(touching_keys) == 1 and "INSERT INTO event_store" in touching_keys[0]
    assert DataKey.objects.filter(subject_id=patient_id).count() == 1
    assert SECRET_NAME not in str(StoredEvent.objects.get(aggregate_id=patient_id).event_data)
    crypto._forget_unwrapped(patient_id)  # open it with the key as stored, not as remembered
    assert store.load(patient_id)[0].event.family_name == SECRET_NAME


def test_a_registration_seals_with_the_key_its_subject_already_has(clinic):
    patient_id = uuid.uuid4()
    with transaction.atomic():
        crypto.key_for_writing(patient_id)
    stored = DataKey.objects.get(subject_id=patient_id)
    assert _register(clinic, patient_id).version == 1
    assert DataKey.objects.get(subject_id=patient_id).wrapped_key == stored.wrapped_key
    crypto._forget_unwrapped(patient_id)
    assert store.load(patient_id)[0].event.family_name == SECRET_NAME


def test_registering_a_forgotten_subject_is_refused_and_writes_nothing(clinic):
    patient_id = uuid.uuid4()
    with transaction.atomic():
        crypto.key_for_writing(patient_id)
    crypto.destroy(patient_id)
    with pytest.raises(RuleViolated) as refused:
        _register(clinic, patient_id)
    assert refused.value.code == "subject_forgotten"
    assert not StoredEvent.objects.filter(aggregate_id=patient_id).exists()
    assert store.current_version(patient_id) == 0


def test_registering_an_existing_patient_again_conflicts_and_keeps_its_key(zelda, clinic):
    stored = DataKey.objects.get(subject_id=zelda)
    with pytest.raises(VersionConflict):
        _register(clinic, zelda, mrn="K-2")
    assert DataKey.objects.get(subject_id=zelda).wrapped_key == stored.wrapped_key
    assert store.current_version(zelda) == 2


def test_an_existing_stream_without_a_key_is_not_claimed_twice(clinic):
    """A stream whose id has no key (its events name no data subject) is found by the fallback:
    the key that the first statement stored is rolled back with the conflict."""
    patient_id = uuid.uuid4()
    store.append(patient_id, "Clinic", [ClinicCreated(name="N", code="n")], 0, {})
    assert not DataKey.objects.filter(subject_id=patient_id).exists()
    with pytest.raises(VersionConflict):
        _register(clinic, patient_id)
    assert not DataKey.objects.filter(subject_id=patient_id).exists()
    assert store.current_version(patient_id) == 1


def test_key_rotation_rewraps_data_keys_without_touching_events(zelda, settings):
    from django.core.management import call_command

    old = settings.MEDFLOW_MASTER_KEY
    new = crypto.generate_master_key()
    events_before = list(StoredEvent.objects.order_by("position").values_list("event_data", flat=True))
    with override_settings(MEDFLOW_MASTER_KEY=new, MEDFLOW_PREVIOUS_MASTER_KEYS=[old]):
        call_command("keys", "rotate")
        new_id = crypto.master_keys()[0]
    assert set(DataKey.objects.values_list("master_key_id", flat=True)) == {new_id}
    assert list(StoredEvent.objects.order_by("position").values_list(
        "event_data", flat=True)) == events_before
    with override_settings(MEDFLOW_MASTER_KEY=new, MEDFLOW_PREVIOUS_MASTER_KEYS=[]):
        assert store.load(zelda)[0].event.family_name == SECRET_NAME
    with pytest.raises(RuntimeError, match="not configured"):
        store.load(zelda)  # the old key alone can no longer unwrap


def test_production_refuses_to_start_without_a_master_key(tmp_path):
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": "x" * 50, "MEDFLOW_MASTER_KEY": "",
           "MEDFLOW_VAR_DIR": str(tmp_path), "DATABASE_URL": ""}
    result = subprocess.run([sys.executable, "-m", "medflow", "check"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "MEDFLOW_MASTER_KEY must be set" in result.stderr
    bad = subprocess.run([sys.executable, "-m", "medflow", "keys", "status"],
                         env={**env, "DEBUG": "true", "MEDFLOW_MASTER_KEY": base64.b64encode(
                             b"short").decode()}, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "32 bytes" in bad.stderr
