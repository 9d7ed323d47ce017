"""Two concurrent bookings of one provider's slot: exactly one wins, on SQLite and PostgreSQL.

Real threads, each with its own connection, so the transactions must really commit
(transaction=True). To make the race certain rather than lucky, each booking pauses right after
its overlap check: without the per-provider lock both checks would pass before either commit.
"""

import threading
import time

import pytest
from django.db import connections

from medflow.errors import Conflict
from medflow.patients.services import register_patient
from medflow.scheduling import services
from medflow.scheduling.models import AppointmentReadModel
from tests.integration.test_scheduling_support import tomorrow_at

pytestmark = pytest.mark.django_db(transaction=True)


def in_thread(target, results, key):
    def run():
        try:
            results[key] = target()
        except Exception as exc:
            results[key] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def slow_overlap_check(monkeypatch):
    """Hold each booking open for a moment after it found the slot free."""
    original = services.find_clash

    def find_clash_then_dawdle(*args, **kwargs):
        clash = original(*args, **kwargs)
        time.sleep(0.3)
        return clash

    monkeypatch.setattr(services, "find_clash", find_clash_then_dawdle)


def race(bookings) -> list:
    barrier = threading.Barrier(len(bookings))
    results: dict = {}

    def start(book):
        def run():
            barrier.wait(timeout=10)
            return book()
        return run

    threads = [in_thread(start(book), results, n) for n, book in enumerate(bookings)]
    for thread in threads:
        thread.join(60)
    return [results[n] for n in range(len(bookings))]


def test_two_bookings_of_one_slot_exactly_one_wins(doctor_ctx, doctor, clinic, patient_fields,
                                                   registered, slow_overlap_check):
    other = register_patient(doctor_ctx, clinic_id=clinic.id,
                             **{**patient_fields, "mrn": "MRN-2"}).aggregate_id

    def booking(patient_id, minute):
        return lambda: services.schedule_appointment(
            doctor_ctx, patient_id=patient_id, provider_id=doctor.pk,
            starts_at=tomorrow_at(9, minute), duration_minutes=30,
        )

    outcomes = race([booking(registered, 0), booking(other, 15)])
    losers = [r for r in outcomes if isinstance(r, Exception)]
    assert len(losers) == 1, outcomes
    assert isinstance(losers[0], Conflict) and losers[0].code == "slot_taken"
    assert AppointmentReadModel.objects.count() == 1


def test_a_reschedule_racing_a_booking_into_the_same_slot_exactly_one_wins(
    doctor_ctx, doctor, registered, slow_overlap_check
):
    moving = services.schedule_appointment(
        doctor_ctx, patient_id=registered, provider_id=doctor.pk, starts_at=tomorrow_at(14),
        duration_minutes=30,
    )
    outcomes = race([
        lambda: services.reschedule_appointment(
            doctor_ctx, moving.aggregate_id, starts_at=tomorrow_at(10), expected_version=1),
        lambda: services.schedule_appointment(
            doctor_ctx, patient_id=registered, provider_id=doctor.pk,
            starts_at=tomorrow_at(10, 20), duration_minutes=30),
    ])
    losers = [r for r in outcomes if isinstance(r, Exception)]
    assert len(losers) == 1, outcomes
    assert isinstance(losers[0], Conflict) and losers[0].code == "slot_taken"
    live = AppointmentReadModel.objects.filter(starts_at__lt=tomorrow_at(11))
    assert live.count() == 1
