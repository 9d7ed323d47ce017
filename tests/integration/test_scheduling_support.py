"""Fixtures and helpers shared by the scheduling tests (this module holds no tests).

Other scheduling test modules import the fixtures they use from here: each fixture's function
is named `<fixture>_fixture`, so that importing it does not shadow the test's argument.
"""

import importlib
import sys
import types
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from medflow.context import Context
from medflow.eventstore import store
from medflow.eventstore.events import DomainEvent
from medflow.scheduling.services import schedule_appointment
from tests.conftest import make_staff


def tomorrow_at(hour: int, minute: int = 0) -> datetime:
    """Return a UTC time tomorrow: always in the future, and on one calendar day."""
    day = timezone.now().astimezone(UTC) + timedelta(days=1)
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0)


def staff_ctx(user, clinic, role: str) -> Context:
    return Context(user_id=user.pk, username=user.username, role=role,
                   clinic_ids=frozenset({clinic.id}))


@pytest.fixture(name="receptionist")
def receptionist_fixture(system, clinic):
    return make_staff(system, clinic, "front_desk", "receptionist")


@pytest.fixture(name="reception_ctx")
def reception_ctx_fixture(receptionist, clinic) -> Context:
    return staff_ctx(receptionist, clinic, "receptionist")


@pytest.fixture(name="nurse")
def nurse_fixture(system, clinic):
    return make_staff(system, clinic, "nurse_joy", "nurse")


@pytest.fixture(name="book")
def book_fixture(doctor_ctx, doctor, registered):
    """Return a function booking `registered` with the doctor; keyword arguments override."""

    def schedule(starts_at=None, **fields):
        fields = {"patient_id": registered, "provider_id": doctor.pk, "duration_minutes": 30,
                  **fields}
        ctx = fields.pop("ctx", doctor_ctx)
        return schedule_appointment(ctx, starts_at=starts_at or tomorrow_at(9), **fields)

    return schedule


class StandInEncounterStarted(DomainEvent):
    """Written by the stand-in for start_encounter, so that the stream exists as it would."""

    appointment_id: str


def real_start_encounter():
    """Return medflow.clinical.services.start_encounter, or None while it does not exist."""
    try:
        module = importlib.import_module("medflow.clinical.services")
    except ImportError:
        return None
    return getattr(module, "start_encounter", None)


def install_start_encounter(monkeypatch, calls: list) -> None:
    """Put a recording start_encounter in place of the clinical one for this test."""

    def start_encounter(ctx, *, patient_id, provider_id, kind, appointment_id, reason,
                        encounter_id, started_at):
        calls.append({
            "ctx": ctx, "patient_id": patient_id, "provider_id": provider_id, "kind": kind,
            "appointment_id": appointment_id, "reason": reason, "encounter_id": encounter_id,
            "started_at": started_at,
        })
        store.append(encounter_id, "Encounter",
                     [StandInEncounterStarted(appointment_id=str(appointment_id))], 0,
                     ctx.metadata("StartEncounter"))

    try:
        module = importlib.import_module("medflow.clinical.services")
    except ImportError:
        module = types.ModuleType("medflow.clinical.services")
        monkeypatch.setitem(sys.modules, "medflow.clinical.services", module)
    monkeypatch.setattr(module, "start_encounter", start_encounter, raising=False)


@pytest.fixture(name="encounter_calls")
def encounter_calls_fixture(monkeypatch) -> list:
    """Record start_encounter calls through a stand-in (always, real clinical code or not)."""
    calls: list = []
    install_start_encounter(monkeypatch, calls)
    return calls


@pytest.fixture(name="clinical_or_stand_in")
def clinical_or_stand_in_fixture(monkeypatch):
    """Let check-ins start encounters: the real clinical service, or a stand-in until it exists."""
    if real_start_encounter() is None:
        install_start_encounter(monkeypatch, [])
