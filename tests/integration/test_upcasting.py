"""Stored events of an old schema are read as the current one: in loads, replays and history."""

import uuid
from datetime import UTC, datetime

import pytest
from django.test import Client

from medflow.access.tokens import create_token
from medflow.eventstore import store
from medflow.eventstore.commands import load_aggregate
from medflow.eventstore.models import Snapshot, StoredEvent, Stream
from medflow.patients.domain import Patient
from medflow.patients.models import PatientReadModel
from medflow.projections.catalog import get
from medflow.projections.rebuild import rebuild

pytestmark = pytest.mark.django_db(transaction=True)


def store_v1_patient(clinic_id) -> uuid.UUID:
    """Write a patient's stream as MedFlow's schema 1 wrote it (address with one `line`)."""
    patient_id = uuid.uuid4()
    now = datetime.now(UTC)
    Stream.objects.create(aggregate_id=patient_id, aggregate_type="Patient", version=2,
                          clinic_id=clinic_id, created_at=now, updated_at=now)
    payloads = [
        ("PatientRegistered", {"clinic_id": str(clinic_id), "mrn": "OLD-1", "given_names": "Mary",
                               "family_name": "Seacole", "birth_date": "1805-11-23",
                               "address": {"line": "14 Tavistock St", "city": "London"}}),
        ("PatientUpdated", {"address": {"line": "", "city": "Kingston", "country": "JM"}}),
    ]
    for version, (event_type, data) in enumerate(payloads, start=1):
        StoredEvent.objects.create(
            aggregate_id=patient_id, aggregate_type="Patient", event_type=event_type,
            event_data=data, version=version, timestamp=now,
            metadata={"schema_version": 1, "username": "legacy", "user_id": None},
        )
    # A snapshot of the old state shape: it must be ignored, not misread.
    Snapshot.objects.create(aggregate_id=patient_id, aggregate_type="Patient", version=2,
                            schema_version=1, state={"garbage": True}, created_at=now)
    return patient_id


def test_old_events_load_as_the_current_schema(clinic):
    patient_id = store_v1_patient(clinic.id)
    events = store.load(patient_id)
    assert events[0].event.address.lines == ["14 Tavistock St"]
    assert events[1].data == {"address": {"lines": [], "city": "Kingston", "state": "",
                                          "postal_code": "", "country": "JM"}}
    patient = load_aggregate(Patient, patient_id)
    assert patient.version == 2 and patient.demographics["address"]["city"] == "Kingston"
    assert patient.demographics["address"]["lines"] == []


def test_replay_and_history_show_the_current_schema(clinic, doctor):
    patient_id = store_v1_patient(clinic.id)
    rebuild(get("patients"))
    row = PatientReadModel.objects.get(id=patient_id)
    assert row.current_data["address"]["lines"] == [] and row.version == 2
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(doctor)[1]}")
    history = api.get(f"/api/patients/{patient_id}/history").json()
    assert history[0]["data"]["address"]["lines"] == ["14 Tavistock St"]
    assert "line" not in history[0]["data"]["address"]
    # New events are written in the current schema beside the old ones.
    response = api.patch(f"/api/patients/{patient_id}", {"address": {"lines": ["1 Up Park"]}},
                         content_type="application/json", HTTP_IF_MATCH="2")
    assert response.status_code == 200, response.content
    newest = StoredEvent.objects.get(aggregate_id=patient_id, version=3)
    assert newest.metadata["schema_version"] == 2
    assert "address" in newest.event_data["_sealed"]["f"]  # sealed now, as personal data
    assert store.load(patient_id)[2].event.address.lines == ["1 Up Park"]
