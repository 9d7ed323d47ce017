"""Process managers: a check-in starts an encounter; an archived patient's future visits are
cancelled. Each is idempotent: the same RecordedEvent handled twice acts once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from medflow.eventstore import store
from medflow.eventstore.models import StoredEvent
from medflow.patients.services import archive_patient
from medflow.scheduling import process
from medflow.scheduling.models import AppointmentReadModel
from medflow.scheduling.services import check_in_appointment
from tests.integration.test_scheduling_support import (  # noqa: F401  (fixtures)
    book_fixture,
    encounter_calls_fixture,
    real_start_encounter,
    tomorrow_at,
)

pytestmark = pytest.mark.django_db


def checked_in(doctor_ctx, book):
    """Book a visit starting now and check the patient in; return the id and check-in event."""
    now = timezone.now()
    result = book(now, reason="sore throat")
    check_in_appointment(doctor_ctx, result.aggregate_id, at=now - timedelta(minutes=2),
                         expected_version=1)
    return result.aggregate_id, store.load(result.aggregate_id)[-1]


def test_check_in_calls_start_encounter_as_promised_once(doctor_ctx, doctor, registered,
                                                         encounter_calls, book):
    appointment_id, event = checked_in(doctor_ctx, book)
    assert event.event_type == "AppointmentCheckedIn"
    assert len(encounter_calls) == 1
    call = encounter_calls[0]
    assert {k: v for k, v in call.items() if k != "ctx"} == {
        "patient_id": registered, "provider_id": doctor.pk, "kind": "ambulatory",
        "appointment_id": appointment_id, "reason": "sore throat",
        "encounter_id": process.encounter_id_for(event), "started_at": event.event.at,
    }
    assert call["encounter_id"] == process.encounter_id_for(event)  # stable: uuid5 of event id
    ctx = call["ctx"]
    assert (ctx.role, ctx.reason, ctx.causation_id) == ("system", "appointment checked in",
                                                        event.id)
    assert str(ctx.correlation_id) == event.metadata["correlation_id"]

    before = StoredEvent.objects.count()
    process.start_encounter_on_check_in(event)
    process.start_encounter_on_check_in(event)
    assert len(encounter_calls) == 1
    assert StoredEvent.objects.count() == before


def test_check_in_starts_a_real_encounter_once(doctor_ctx, registered, book):
    if real_start_encounter() is None:
        pytest.skip("medflow.clinical.services.start_encounter does not exist yet")
    appointment_id, event = checked_in(doctor_ctx, book)
    encounter_id = process.encounter_id_for(event)
    started = store.load(encounter_id)
    assert started, "the check-in started no encounter"
    first = started[0]
    assert first.metadata["causation_id"] == str(event.id)
    assert first.metadata["correlation_id"] == event.metadata["correlation_id"]
    assert getattr(first.event, "patient_id", None) == registered
    assert str(getattr(first.event, "appointment_id", None)) == str(appointment_id)

    before = StoredEvent.objects.count()
    process.start_encounter_on_check_in(event)
    assert StoredEvent.objects.count() == before
    assert len(store.load(encounter_id)) == len(started)


def test_archiving_a_patient_cancels_only_appointments_yet_to_begin(
    doctor_ctx, registered, encounter_calls, book
):
    now = timezone.now()
    future = [book(tomorrow_at(9)).aggregate_id, book(tomorrow_at(11)).aggregate_id]
    begun = book(now - timedelta(minutes=20), now=now - timedelta(hours=1)).aggregate_id
    arrived = book(tomorrow_at(8)).aggregate_id
    check_in_appointment(doctor_ctx, arrived, expected_version=1)

    archive_patient(doctor_ctx, registered, reason="moved away")
    archived = store.load(registered)[-1]
    status = dict(AppointmentReadModel.objects.values_list("id", "status"))
    assert status == {future[0]: "cancelled", future[1]: "cancelled", begun: "scheduled",
                      arrived: "checked_in"}
    for appointment_id in future:
        cancelled = store.load(appointment_id)[-1]
        assert cancelled.event_type == "AppointmentCancelled"
        assert (cancelled.data["reason"], cancelled.data["by"]) == ("patient archived", "system")
        assert cancelled.metadata["causation_id"] == str(archived.id)
        assert cancelled.metadata["correlation_id"] == archived.metadata["correlation_id"]
        assert cancelled.metadata["role"] == "system"

    before = StoredEvent.objects.count()
    process.cancel_appointments_of_archived_patient(archived)
    process.cancel_appointments_of_archived_patient(archived)
    assert StoredEvent.objects.count() == before


def test_redelivered_archive_acts_once_even_while_the_read_model_lags(doctor_ctx, registered,
                                                                    book):
    """The cancel commands are keyed by event id, so a replay before the read model caught up
    (it still says "scheduled") is a no-op too."""
    future = book(tomorrow_at(9)).aggregate_id
    archive_patient(doctor_ctx, registered)
    archived = store.load(registered)[-1]
    AppointmentReadModel.objects.filter(id=future).update(status="scheduled")
    before = StoredEvent.objects.count()
    process.cancel_appointments_of_archived_patient(archived)
    assert StoredEvent.objects.count() == before
    assert [e.event_type for e in store.load(future)] == ["AppointmentScheduled",
                                                          "AppointmentCancelled"]

