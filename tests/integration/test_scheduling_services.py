"""Scheduling services: invariants, double booking, roles, scope, read models, as_of, replay."""

import uuid
from datetime import UTC, date, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from medflow.context import Context
from medflow.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RuleViolated,
    VersionConflict,
)
from medflow.eventstore import store
from medflow.eventstore.handlers import InlineHandlers
from medflow.eventstore.models import StoredEvent
from medflow.patients.services import archive_patient, register_patient
from medflow.scheduling import projections, queries
from medflow.scheduling.domain import (
    AppointmentCancelled,
    AppointmentCheckedIn,
    AppointmentCompleted,
    AppointmentNoShow,
    AppointmentRescheduled,
    AppointmentScheduled,
)
from medflow.scheduling.models import AppointmentReadModel
from medflow.scheduling.services import (
    cancel_appointment,
    check_in_appointment,
    complete_appointment,
    mark_no_show,
    reschedule_appointment,
    schedule_appointment,
)
from tests.conftest import make_staff
from tests.integration.test_scheduling_support import (  # noqa: F401  (fixtures)
    book_fixture,
    clinical_or_stand_in_fixture,
    nurse_fixture,
    reception_ctx_fixture,
    receptionist_fixture,
    staff_ctx,
    tomorrow_at,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clinical_or_stand_in")]


def row(appointment_id) -> AppointmentReadModel:
    return AppointmentReadModel.objects.get(id=appointment_id)


def test_schedule_writes_the_event_and_the_read_model_together(doctor_ctx, doctor, clinic,
                                                               registered, book):
    result = book(tomorrow_at(9), kind="follow_up", reason="BP check")
    appointment = row(result.aggregate_id)
    assert (appointment.patient_id, appointment.clinic_id, appointment.provider_id) == (
        registered, clinic.id, doctor.pk)
    assert (appointment.starts_at, appointment.ends_at) == (tomorrow_at(9), tomorrow_at(9, 30))
    assert (appointment.status, appointment.kind, appointment.reason, appointment.version) == (
        "scheduled", "follow_up", "BP check", 1)
    event = store.load(result.aggregate_id)[0]
    assert event.event_type == "AppointmentScheduled"
    assert event.metadata["command"] == "ScheduleAppointment"
    assert event.metadata["user_id"] == doctor_ctx.user_id
    assert store.current_version(result.aggregate_id) == 1


def test_every_command_moves_the_read_model(doctor_ctx, book):
    moved = book(tomorrow_at(9))
    reschedule_appointment(doctor_ctx, moved.aggregate_id, starts_at=tomorrow_at(11),
                           reason="doctor late", expected_version=1)
    assert (row(moved.aggregate_id).starts_at, row(moved.aggregate_id).ends_at) == (
        tomorrow_at(11), tomorrow_at(11, 30))
    assert store.load(moved.aggregate_id)[-1].metadata["reason"] == "doctor late"
    cancel_appointment(doctor_ctx, moved.aggregate_id, reason="flu", by="patient",
                       expected_version=2)
    cancelled = row(moved.aggregate_id).current_data
    assert (cancelled["status"], cancelled["cancel_reason"], cancelled["cancelled_by"]) == (
        "cancelled", "flu", "patient")

    now = timezone.now()
    visit = book(now + timedelta(minutes=2))
    check_in_appointment(doctor_ctx, visit.aggregate_id, expected_version=1)
    assert row(visit.aggregate_id).status == "checked_in"
    complete_appointment(doctor_ctx, visit.aggregate_id, expected_version=2)
    done = row(visit.aggregate_id)
    assert (done.status, done.version) == ("completed", 3)
    assert done.current_data["completed_at"] >= done.current_data["checked_in_at"]

    missed = book(now - timedelta(minutes=70), now=now - timedelta(hours=2))
    mark_no_show(doctor_ctx, missed.aggregate_id, expected_version=1)
    assert row(missed.aggregate_id).status == "no_show"


def test_the_same_slot_cannot_be_booked_twice(doctor_ctx, clinic, patient_fields, book):
    first = book(tomorrow_at(9))
    other = register_patient(doctor_ctx, clinic_id=clinic.id,
                             **{**patient_fields, "mrn": "MRN-2"}).aggregate_id
    before = StoredEvent.objects.count()
    for start, minutes in ((tomorrow_at(9), 30), (tomorrow_at(9, 29), 5),
                           (tomorrow_at(8, 45), 20), (tomorrow_at(8), 120)):
        with pytest.raises(Conflict) as err:
            book(start, patient_id=other, duration_minutes=minutes)
        assert (err.value.code, err.value.field) == ("slot_taken", "starts_at")
    assert StoredEvent.objects.count() == before
    assert AppointmentReadModel.objects.count() == 1
    # Back to back is fine, and so is a cancelled slot.
    book(tomorrow_at(9, 30), patient_id=other)
    book(tomorrow_at(8, 30), patient_id=other)
    cancel_appointment(doctor_ctx, first.aggregate_id, expected_version=1)
    book(tomorrow_at(9), patient_id=other)


def test_other_providers_are_not_blocked(system, clinic, doctor, registered, book):
    colleague = make_staff(system, clinic, "dr_wilson", "doctor")
    book(tomorrow_at(9))
    assert book(tomorrow_at(9), provider_id=colleague.pk).version == 1


def test_checked_in_completed_and_no_show_appointments_keep_their_slot(doctor_ctx, book):
    now = timezone.now()
    earlier = now - timedelta(hours=3)
    missed = book(now - timedelta(minutes=60), now=earlier)
    mark_no_show(doctor_ctx, missed.aggregate_id, expected_version=1)
    with pytest.raises(Conflict):
        book(now - timedelta(minutes=50), now=earlier)
    visit = book(now)
    check_in_appointment(doctor_ctx, visit.aggregate_id, expected_version=1)
    with pytest.raises(Conflict):
        book(now + timedelta(minutes=10))


def test_reschedule_into_a_taken_slot_is_refused_but_within_its_own_is_not(doctor_ctx, book):
    first = book(tomorrow_at(9))
    second = book(tomorrow_at(10))
    with pytest.raises(Conflict) as err:
        reschedule_appointment(doctor_ctx, second.aggregate_id, starts_at=tomorrow_at(9, 15),
                               expected_version=1)
    assert err.value.code == "slot_taken"
    assert row(second.aggregate_id).starts_at == tomorrow_at(10)
    reschedule_appointment(doctor_ctx, first.aggregate_id, starts_at=tomorrow_at(9, 10),
                           expected_version=1)
    assert row(first.aggregate_id).starts_at == tomorrow_at(9, 10)


def test_the_provider_must_be_a_doctor_or_nurse_of_the_patients_clinic(
    system, other_clinic, receptionist, nurse, book
):
    stranger = make_staff(system, other_clinic, "dr_elsewhere", "doctor")
    before = StoredEvent.objects.count()
    for provider in (receptionist.pk, stranger.pk, 999_999):
        with pytest.raises(InvalidInput) as err:
            book(provider_id=provider)
        assert err.value.field == "provider_id"
    assert StoredEvent.objects.count() == before
    assert book(provider_id=nurse.pk).version == 1


def test_invalid_input_writes_nothing(doctor_ctx, book):
    before = StoredEvent.objects.count()
    for fields, field in (
        ({"starts_at": timezone.now() - timedelta(hours=1)}, "starts_at"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"duration_minutes": None, "ends_at": tomorrow_at(8)}, "ends_at"),
        ({"kind": "séance"}, "kind"),
    ):
        with pytest.raises(InvalidInput) as err:
            book(**fields)
        assert err.value.field == field
    assert StoredEvent.objects.count() == before
    assert not AppointmentReadModel.objects.exists()


def test_stale_version_is_refused(doctor_ctx, book):
    result = book()
    reschedule_appointment(doctor_ctx, result.aggregate_id, starts_at=tomorrow_at(12),
                           expected_version=1)
    with pytest.raises(VersionConflict):
        cancel_appointment(doctor_ctx, result.aggregate_id, expected_version=1)
    assert row(result.aggregate_id).status == "scheduled"


def test_roles(clinic, doctor, receptionist, reception_ctx, registered, book):
    booked = book(ctx=reception_ctx)
    assert row(booked.aggregate_id).provider_id == doctor.pk
    now = timezone.now()
    visit = book(now, ctx=reception_ctx)
    check_in_appointment(reception_ctx, visit.aggregate_id, expected_version=1)
    before = StoredEvent.objects.count()
    with pytest.raises(PermissionDenied):
        complete_appointment(reception_ctx, visit.aggregate_id, expected_version=2)
    nobody = Context(user_id=receptionist.pk, role="", clinic_ids=frozenset({clinic.id}))
    with pytest.raises(PermissionDenied):
        book(tomorrow_at(15), ctx=nobody)
    with pytest.raises(PermissionDenied):
        cancel_appointment(nobody, booked.aggregate_id, expected_version=1)
    assert StoredEvent.objects.count() == before


def test_only_medflow_itself_cancels_as_system(doctor_ctx, book):
    result = book()
    with pytest.raises(InvalidInput) as err:
        cancel_appointment(doctor_ctx, result.aggregate_id, by="system", expected_version=1)
    assert err.value.field == "by"


def test_foreign_clinic_sees_nothing(system, clinic, other_clinic, doctor, registered, book):
    result = book()
    stranger = Context(user_id=999, role="doctor", clinic_ids=frozenset({other_clinic.id}))
    before = StoredEvent.objects.count()
    for attempt in (
        lambda: schedule_appointment(stranger, patient_id=registered, provider_id=doctor.pk,
                                     starts_at=tomorrow_at(14), duration_minutes=15),
        lambda: reschedule_appointment(stranger, result.aggregate_id, starts_at=tomorrow_at(14)),
        lambda: cancel_appointment(stranger, result.aggregate_id),
        lambda: check_in_appointment(stranger, result.aggregate_id),
        lambda: mark_no_show(stranger, result.aggregate_id),
        lambda: queries.get_appointment(stranger, result.aggregate_id),
        lambda: queries.get_appointment_at(stranger, result.aggregate_id, timezone.now()),
        lambda: queries.patient_appointments(stranger, registered),
    ):
        with pytest.raises(NotFound):
            attempt()
    assert StoredEvent.objects.count() == before
    assert queries.provider_day(stranger, doctor.pk, tomorrow_at(9).date(), UTC) == []


def test_an_archived_patient_takes_no_new_appointments(doctor_ctx, registered, book):
    now = timezone.now()
    earlier = book(now - timedelta(minutes=30), now=now - timedelta(hours=1))
    archive_patient(doctor_ctx, registered)
    with pytest.raises(RuleViolated) as err:
        book(tomorrow_at(9))
    assert (err.value.code, err.value.field) == ("patient_archived", "patient_id")
    with pytest.raises(RuleViolated):
        reschedule_appointment(doctor_ctx, earlier.aggregate_id, starts_at=tomorrow_at(10))


def test_retried_command_id_books_once(book):
    command = uuid.uuid4()
    first = book(command_id=command)
    again = book(command_id=command)
    assert (again.aggregate_id, again.replayed) == (first.aggregate_id, True)
    assert AppointmentReadModel.objects.count() == 1


def test_patient_appointments_now_and_as_of(doctor_ctx, registered, book):
    late = book(tomorrow_at(15))
    early = book(tomorrow_at(9))
    at_two = StoredEvent.objects.get(aggregate_id=early.aggregate_id).timestamp
    reschedule_appointment(doctor_ctx, late.aggregate_id, starts_at=tomorrow_at(8),
                           expected_version=1)
    third = book(tomorrow_at(12))
    now = [v.data["id"] for v in queries.patient_appointments(doctor_ctx, registered)]
    assert now == [str(late.aggregate_id), str(early.aggregate_id), str(third.aggregate_id)]
    then = queries.patient_appointments(doctor_ctx, registered, as_of=at_two)
    assert [(v.data["id"], v.version) for v in then] == [
        (str(early.aggregate_id), 1), (str(late.aggregate_id), 1)]
    assert then[1].data["starts_at"] == tomorrow_at(15).isoformat()
    assert queries.patient_appointments(doctor_ctx, registered,
                                        as_of=at_two - timedelta(days=1)) == []
    view = queries.get_appointment_at(doctor_ctx, late.aggregate_id, at_two)
    assert (view.version, view.data["starts_at"]) == (1, tomorrow_at(15).isoformat())
    with pytest.raises(NotFound) as err:
        queries.get_appointment_at(doctor_ctx, third.aggregate_id, at_two)
    assert err.value.field == "as_of"


def test_provider_day_lists_the_days_appointments_with_patient_names(
    doctor_ctx, system, clinic, other_clinic, doctor, patient_fields, registered, book
):
    other = register_patient(doctor_ctx, clinic_id=clinic.id, **{
        **patient_fields, "mrn": "MRN-2", "given_names": "Charles", "family_name": "Babbage"
    }).aggregate_id
    day = tomorrow_at(0).date()
    book(tomorrow_at(14), patient_id=other)
    book(tomorrow_at(9))
    dropped = book(tomorrow_at(10))
    cancel_appointment(doctor_ctx, dropped.aggregate_id, expected_version=1)
    book(tomorrow_at(9) + timedelta(days=1))  # the day after: not listed
    entries = queries.provider_day(doctor_ctx, doctor.pk, day, UTC)
    assert [(e.appointment.starts_at, e.patient.family_name) for e in entries] == [
        (tomorrow_at(9), "Lovelace"), (tomorrow_at(14), "Babbage")]
    with_cancelled = queries.provider_day(doctor_ctx, doctor.pk, day, UTC, include_cancelled=True)
    assert [e.appointment.status for e in with_cancelled] == ["scheduled", "cancelled", "scheduled"]
    # In Auckland (UTC+12/13) 09:00 UTC is already the evening, and 14:00 UTC the next day.
    auckland = queries.provider_day(doctor_ctx, doctor.pk, day, ZoneInfo("Pacific/Auckland"))
    assert [e.appointment.starts_at for e in auckland] == [tomorrow_at(9)]


def test_provider_day_includes_an_appointment_running_over_midnight(doctor_ctx, doctor, book):
    late = book(tomorrow_at(23, 30), duration_minutes=60)
    next_day: date = (tomorrow_at(23, 30) + timedelta(hours=1)).date()
    entries = queries.provider_day(doctor_ctx, doctor.pk, next_day, UTC)
    assert [e.appointment.id for e in entries] == [late.aggregate_id]


def test_read_model_equals_a_fresh_replay_of_the_log(doctor_ctx, book):
    now = timezone.now()
    a = book(tomorrow_at(9))
    reschedule_appointment(doctor_ctx, a.aggregate_id, starts_at=tomorrow_at(10),
                           duration_minutes=45, expected_version=1)
    b = book(tomorrow_at(11), reason="cough")
    cancel_appointment(doctor_ctx, b.aggregate_id, reason="better", expected_version=1)
    c = book(now)
    check_in_appointment(doctor_ctx, c.aggregate_id, expected_version=1)
    complete_appointment(doctor_ctx, c.aggregate_id, expected_version=2)
    d = book(now - timedelta(minutes=50), now=now - timedelta(hours=1))
    mark_no_show(doctor_ctx, d.aggregate_id, expected_version=1)

    def snapshot():
        return sorted(
            (dict(r) for r in AppointmentReadModel.objects.values()), key=lambda r: str(r["id"])
        )

    before = snapshot()
    assert len(before) == 4
    AppointmentReadModel.objects.all().delete()
    ours = InlineHandlers()
    ours.on(AppointmentScheduled)(projections.on_scheduled)
    ours.on(AppointmentRescheduled, AppointmentCancelled, AppointmentCheckedIn,
            AppointmentCompleted, AppointmentNoShow)(projections.on_changed)
    ours.dispatch(list(store.iter_all()))
    assert snapshot() == before


def test_scheduled_time_is_stored_in_utc(book):
    paris = tomorrow_at(9).astimezone(ZoneInfo("Europe/Paris"))
    result = book(paris.isoformat())
    assert store.load(result.aggregate_id)[0].data["starts_at"] == (
        tomorrow_at(9).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert row(result.aggregate_id).starts_at == tomorrow_at(9)
