"""Event registry, validation and upcasting: no database."""

from typing import ClassVar

import pytest

from medflow.access.domain import Clinic, ClinicCreated, StaffRoleGranted
from medflow.errors import InvalidInput, RuleViolated
from medflow.eventstore.events import DomainEvent, EventRegistry, registry


def test_events_are_registered_by_type_name_and_frozen():
    assert registry.get("ClinicCreated") is ClinicCreated
    event = ClinicCreated(name="North", code="north")
    with pytest.raises(Exception):  # noqa: B017  (pydantic's frozen-instance error)
        event.name = "South"


def test_unknown_event_type_is_a_clear_error():
    with pytest.raises(InvalidInput) as err:
        registry.get("NoSuchEvent")
    assert err.value.field == "event_type"


def test_decode_validates_stored_payloads():
    with pytest.raises(InvalidInput) as err:
        registry.decode("ClinicCreated", 1, {"name": "North"})
    assert err.value.field == "code"


def test_upcasters_bring_old_payloads_to_the_current_version():
    local = EventRegistry()

    class Renamed(DomainEvent):
        schema_version: ClassVar[int] = 3
        given_names: str
        family_name: str

    local.register(Renamed)

    @local.upcaster("Renamed", 1)
    def split_name(data):
        given, _, family = data.pop("name").rpartition(" ")
        return {**data, "given_names": given, "family_name": family}

    @local.upcaster("Renamed", 2)
    def strip(data):
        return {k: v.strip() for k, v in data.items()}

    event = local.decode("Renamed", 1, {"name": "Ada  Lovelace"})
    assert (event.given_names, event.family_name) == ("Ada", "Lovelace")
    with pytest.raises(InvalidInput):
        EventRegistry().decode("Renamed", 1, {})


def test_clinic_roster_allows_one_role_per_person():
    clinic = Clinic.replay(__import__("uuid").uuid4(), [ClinicCreated(name="N", code="n")])
    clinic.grant(7, "dr", "doctor")
    clinic.grant(7, "dr", "doctor")
    clinic.grant(7, "dr", "admin")
    assert [type(e) for e in clinic.pending] == [StaffRoleGranted, StaffRoleGranted]
    assert clinic.roles == {7: "admin"}
    with pytest.raises(InvalidInput):
        clinic.grant(8, "x", "janitor")
    clinic.revoke(7)
    with pytest.raises(RuleViolated):
        clinic.revoke(7)
