"""`medflow verify`: the seeds' validation rules over the whole store, each violation named."""

import io
import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from medflow.context import system_context
from medflow.eventstore.models import StoredEvent, Stream
from medflow.patients.models import PatientReadModel
from medflow.patients.services import register_patient, update_patient

pytestmark = pytest.mark.django_db(transaction=True)


def verify(*args) -> tuple[bool, str]:
    out = io.StringIO()
    try:
        call_command("verify", *args, stdout=out)
        return True, out.getvalue()
    except CommandError:
        return False, out.getvalue()


@pytest.fixture
def patients(clinic):
    ctx = system_context("test")
    ids = []
    for i in range(3):
        pid = register_patient(ctx, clinic_id=clinic.id, mrn=f"V-{i}", given_names="Vera",
                               family_name=f"Rubin{i}", birth_date="1928-07-23").aggregate_id
        update_patient(ctx, pid, {"phone": f"555 010{i}"}, expected_version=1)
        ids.append(pid)
    return ids


def test_clean_store_passes(patients):
    ok, out = verify()
    assert ok, out
    assert "ok   consistency_check: 0 violation(s)" in out


def test_gap_in_versions_is_named(patients):
    StoredEvent.objects.filter(aggregate_id=patients[0], version=1).delete()
    ok, out = verify("--store-only")
    assert not ok
    assert f"version_continuity   {patients[0]}  1 events with versions 2..2" in out


def test_stream_row_out_of_step_is_named(patients):
    Stream.objects.filter(aggregate_id=patients[1]).update(version=5)
    ok, out = verify("--store-only")
    assert not ok and f"{patients[1]}  stream row says version 5, events end at 2" in out


def test_timestamps_going_backwards_are_named(patients):
    first = StoredEvent.objects.get(aggregate_id=patients[2], version=1)
    StoredEvent.objects.filter(pk=first.pk).update(timestamp=first.timestamp + timedelta(days=1))
    ok, out = verify("--store-only")
    assert not ok and "timestamp_order" in out and str(patients[2]) in out


def test_invalid_payload_is_named(patients):
    StoredEvent.objects.filter(aggregate_id=patients[0], version=2).update(
        event_data={"phone": "not a phone"})
    ok, out = verify("--store-only", "--json")
    report = json.loads(out)
    assert not ok and report["counts"]["data_schema_valid"] == 1
    assert report["violations"][0]["subject"] == f"{patients[0]} v2"
    assert "phone" in report["violations"][0]["detail"]


def test_read_model_drift_and_version_mismatch_are_named(patients):
    PatientReadModel.objects.filter(id=patients[0]).update(family_name="Drifted")
    PatientReadModel.objects.filter(id=patients[1]).update(version=9)
    PatientReadModel.objects.filter(id=patients[2]).delete()
    ghost = uuid.uuid4()
    PatientReadModel.objects.create(
        id=ghost, clinic_id=uuid.uuid4(), mrn="G", family_name="G", given_names="G",
        search_name="g g", birth_date="2000-01-01", current_data={}, version=1,
        last_updated="2026-01-01T00:00:00Z")
    ok, out = verify()
    assert not ok
    lines = out.splitlines()
    assert f"consistency_check    patient_read_model {patients[0]}  row differs compared with a fresh replay" in lines  # noqa: E501
    assert f"consistency_check    patient_read_model {patients[2]}  row missing compared with a fresh replay" in lines  # noqa: E501
    assert f"consistency_check    patient_read_model {ghost}  row extra compared with a fresh replay" in lines
    assert f"version_match        patient_read_model {patients[1]}  read model at version 9, stream at 2" in lines  # noqa: E501
    assert any(line.startswith("version_match") and str(ghost) in line for line in lines)


def test_catch_up_projection_is_compared_at_its_checkpoint(patients):
    from medflow.projections import runner
    from medflow.projections.catalog import get
    from medflow.projections.models import EventCount

    runner.run_once(get("event_counts"), batch=4)
    ok, out = verify()
    assert ok, out  # behind the log, but equal to a replay up to its checkpoint
    EventCount.objects.update(count=77)
    ok, out = verify()
    assert not ok and "event_count_read_model" in out
