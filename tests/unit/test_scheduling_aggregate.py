"""Given/when/then tests of the Appointment aggregate: no database."""

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from medflow.errors import InvalidInput, RuleViolated
from medflow.scheduling.domain import (
    Appointment,
    AppointmentCancelled,
    AppointmentCheckedIn,
    AppointmentCompleted,
    AppointmentNoShow,
    AppointmentRescheduled,
    AppointmentScheduled,
)

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
NINE = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PATIENT = uuid.uuid4()
CLINIC = uuid.uuid4()
SCHEDULED = AppointmentScheduled(
    patient_id=PATIENT, clinic_id=CLINIC, provider_id=7, starts_at=NINE,
    ends_at=NINE + timedelta(minutes=30), kind="follow_up", reason="BP check",
)
CHECKED_IN = AppointmentCheckedIn(patient_id=PATIENT, at=NINE - timedelta(minutes=5))


def given(*events) -> Appointment:
    return Appointment.replay(uuid.uuid4(), events)


def schedule(appointment=None, **fields):
    appointment = appointment or given()
    args = {"now": NOW, "patient_id": PATIENT, "clinic_id": CLINIC, "provider_id": 7,
            "starts_at": NINE, "duration_minutes": 30, **fields}
    appointment.schedule(**args)
    return appointment


def test_schedule_with_a_duration_records_appointment_scheduled():
    appointment = schedule(kind="follow_up", reason="BP check")
    assert appointment.pending == [SCHEDULED]
    assert (appointment.status, appointment.duration_minutes) == ("scheduled", 30)


def test_schedule_with_an_end_in_another_zone_is_stored_in_utc():
    paris = timezone(timedelta(hours=1))
    appointment = schedule(starts_at="2026-11-23T10:00:00+01:00",
                           ends_at=datetime(2026, 11, 23, 10, 45, tzinfo=paris),
                           duration_minutes=None)
    event = appointment.pending[0]
    assert (event.starts_at, event.ends_at) == (NINE, NINE + timedelta(minutes=45))
    assert event.starts_at.tzinfo == UTC
    assert event.payload()["starts_at"] == "2026-11-23T09:00:00Z"


@pytest.mark.parametrize(("fields", "field"), [
    ({"duration_minutes": None}, "ends_at"),
    ({"ends_at": NINE + timedelta(minutes=20)}, "duration_minutes"),
    ({"duration_minutes": 0}, "duration_minutes"),
    ({"duration_minutes": 721}, "duration_minutes"),
    ({"duration_minutes": "half an hour"}, "duration_minutes"),
    ({"duration_minutes": None, "ends_at": NINE}, "ends_at"),
    ({"duration_minutes": None, "ends_at": NINE - timedelta(minutes=1)}, "ends_at"),
    ({"duration_minutes": None, "ends_at": NINE + timedelta(hours=13)}, "ends_at"),
    ({"starts_at": "2026-11-23T09:00:00"}, "starts_at"),
    ({"starts_at": "tomorrow"}, "starts_at"),
    ({"starts_at": None}, "starts_at"),
    ({"starts_at": NOW - timedelta(minutes=6)}, "starts_at"),
    ({"starts_at": NOW + timedelta(days=731)}, "starts_at"),
    ({"kind": "surgery-ish"}, "kind"),
    ({"reason": "x" * 501}, "reason"),
    ({"provider_id": "dr who"}, "provider_id"),
])
def test_schedule_refuses_bad_slots_naming_the_field(fields, field):
    with pytest.raises(InvalidInput) as err:
        schedule(**fields)
    assert err.value.field == field


def test_out_of_range_messages_name_the_unit():
    with pytest.raises(InvalidInput) as err:
        schedule(duration_minutes=1000)
    assert "minutes" in err.value.message and "duration_minutes" in err.value.message


def test_a_slot_that_began_within_the_grace_period_may_still_be_booked():
    appointment = schedule(starts_at=NOW - timedelta(minutes=4))
    assert appointment.pending[0].starts_at == NOW - timedelta(minutes=4)


def test_schedule_twice_is_refused():
    with pytest.raises(RuleViolated) as err:
        schedule(given(SCHEDULED))
    assert err.value.code == "already_scheduled"


def test_reschedule_keeps_the_length_unless_told():
    appointment = given(SCHEDULED)
    appointment.reschedule(now=NOW, starts_at=NINE + timedelta(hours=2), reason="doctor late")
    assert appointment.pending == [AppointmentRescheduled(
        patient_id=PATIENT, starts_at=NINE + timedelta(hours=2),
        ends_at=NINE + timedelta(hours=2, minutes=30), reason="doctor late",
    )]
    appointment = given(SCHEDULED)
    appointment.reschedule(now=NOW, starts_at=NINE, duration_minutes=60)
    assert appointment.ends_at == NINE + timedelta(hours=1)


def test_reschedule_to_the_same_slot_records_nothing():
    appointment = given(SCHEDULED)
    appointment.reschedule(now=NOW, starts_at="2026-11-23T10:00:00+01:00")
    assert appointment.pending == []


def test_reschedule_into_the_past_is_refused():
    with pytest.raises(InvalidInput) as err:
        given(SCHEDULED).reschedule(now=NOW, starts_at=NOW - timedelta(hours=1))
    assert err.value.field == "starts_at"


def test_cancel_records_reason_and_party():
    appointment = given(SCHEDULED)
    appointment.cancel(reason="feeling better", by="patient")
    assert appointment.pending == [
        AppointmentCancelled(patient_id=PATIENT, reason="feeling better", by="patient")]
    assert appointment.status == "cancelled"
    with pytest.raises(InvalidInput) as err:
        given(SCHEDULED).cancel(by="the weather")
    assert err.value.field == "by"


def test_check_in_then_complete():
    appointment = given(SCHEDULED)
    appointment.check_in(now=NINE - timedelta(minutes=5))
    appointment.complete(now=NINE + timedelta(minutes=25))
    assert appointment.pending == [
        CHECKED_IN,
        AppointmentCompleted(patient_id=PATIENT, at=NINE + timedelta(minutes=25)),
    ]
    assert appointment.status == "completed"


def test_check_in_at_an_earlier_time_but_not_a_future_one():
    appointment = given(SCHEDULED)
    appointment.check_in(now=NINE, at="2026-11-23T08:55:00Z")
    assert appointment.checked_in_at == NINE - timedelta(minutes=5)
    with pytest.raises(InvalidInput) as err:
        given(SCHEDULED).check_in(now=NINE, at=NINE + timedelta(minutes=6))
    assert err.value.field == "at"


def test_complete_needs_a_check_in_and_a_time_after_it():
    with pytest.raises(RuleViolated) as err:
        given(SCHEDULED).complete(now=NINE)
    assert err.value.code == "invalid_transition"
    with pytest.raises(InvalidInput) as err:
        given(SCHEDULED, CHECKED_IN).complete(now=NINE, at=NINE - timedelta(minutes=6))
    assert err.value.field == "at"


def test_no_show_only_once_the_slot_has_begun():
    with pytest.raises(RuleViolated) as err:
        given(SCHEDULED).no_show(now=NINE - timedelta(seconds=1))
    assert err.value.code == "not_started"
    appointment = given(SCHEDULED)
    appointment.no_show(now=NINE)
    assert appointment.pending == [AppointmentNoShow(patient_id=PATIENT)]


FINAL = {
    "cancelled": AppointmentCancelled(patient_id=PATIENT),
    "completed": AppointmentCompleted(patient_id=PATIENT, at=NINE),
    "no_show": AppointmentNoShow(patient_id=PATIENT),
}
COMMANDS = {
    "reschedule": lambda a: a.reschedule(now=NOW, starts_at=NINE + timedelta(hours=1)),
    "cancel": lambda a: a.cancel(),
    "check_in": lambda a: a.check_in(now=NINE),
    "complete": lambda a: a.complete(now=NINE + timedelta(minutes=10)),
    "no_show": lambda a: a.no_show(now=NINE + timedelta(minutes=10)),
}


@pytest.mark.parametrize("final", FINAL)
@pytest.mark.parametrize("command", COMMANDS)
def test_no_transition_out_of_a_final_state(final, command):
    history = [SCHEDULED, CHECKED_IN, FINAL[final]] if final == "completed" else [
        SCHEDULED, FINAL[final]]
    appointment = given(*history)
    with pytest.raises(RuleViolated) as err:
        COMMANDS[command](appointment)
    assert err.value.code == "invalid_transition"
    assert appointment.pending == []


@pytest.mark.parametrize("command", ["reschedule", "cancel", "check_in", "no_show"])
def test_a_checked_in_appointment_can_only_be_completed(command):
    with pytest.raises(RuleViolated) as err:
        COMMANDS[command](given(SCHEDULED, CHECKED_IN))
    assert err.value.code == "invalid_transition"


def test_state_survives_a_snapshot_round_trip():
    appointment = given(SCHEDULED, AppointmentRescheduled(
        patient_id=PATIENT, starts_at=NINE + timedelta(hours=1),
        ends_at=NINE + timedelta(hours=1, minutes=20)), CHECKED_IN)
    copy = Appointment.from_snapshot(appointment.id, appointment.version,
                                     appointment.snapshot_state())
    assert copy.state() == appointment.state()
    assert (copy.version, copy.status, copy.duration_minutes) == (3, "checked_in", 20)
    cancelled = given(SCHEDULED, AppointmentCancelled(patient_id=PATIENT, reason="r", by="patient"))
    copy = Appointment.from_snapshot(cancelled.id, 2, cancelled.snapshot_state())
    assert (copy.cancelled_by, copy.cancel_reason) == ("patient", "r")


def test_events_land_on_the_timeline_with_a_summary():
    assert SCHEDULED.timeline_kind == "appointment"
    assert SCHEDULED.summary() == "Appointment (follow up) booked for 2026-11-23 09:00 UTC, 30 min"
    assert CHECKED_IN.effective_time_field == "at"
    assert AppointmentCancelled(patient_id=PATIENT, reason="flu", by="patient").summary() == (
        "Appointment cancelled by patient: flu")
