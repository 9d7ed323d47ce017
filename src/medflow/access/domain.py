"""The Clinic aggregate: a tenant and its staff roster. No Django here."""

from enum import StrEnum
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import StringConstraints

from medflow.errors import RuleViolated
from medflow.eventstore.aggregate import Aggregate
from medflow.eventstore.events import DomainEvent, validate_event

ClinicName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ClinicCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40, pattern=r"^[\w-]+$")
]


class Role(StrEnum):
    """The seeds' staff roles."""

    DOCTOR = "doctor"
    NURSE = "nurse"
    RECEPTIONIST = "receptionist"
    ADMIN = "admin"


class ClinicCreated(DomainEvent):
    name: ClinicName
    code: ClinicCode


class StaffRoleGranted(DomainEvent):
    user_id: int
    username: str
    role: Role


class StaffRoleRevoked(DomainEvent):
    user_id: int


class Clinic(Aggregate):
    """A clinic and who works there in which role (one role per person per clinic)."""

    aggregate_type = "Clinic"

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.name = ""
        self.code = ""
        self.roles: dict[int, str] = {}

    def create(self, name: str, code: str) -> None:
        """Open a new clinic."""
        if self.exists:
            raise RuleViolated("clinic already exists", code="already_exists")
        self.record(validate_event(ClinicCreated, {"name": name, "code": code}))

    def grant(self, user_id: int, username: str, role: str) -> None:
        """Give a person a role here, replacing any role they had."""
        event = validate_event(
            StaffRoleGranted, {"user_id": user_id, "username": username, "role": role}
        )
        if self.roles.get(user_id) != event.role:
            self.record(event)

    def revoke(self, user_id: int) -> None:
        """Take away a person's role here."""
        if user_id not in self.roles:
            raise RuleViolated("that person has no role in this clinic", code="no_role")
        self.record(StaffRoleRevoked(user_id=user_id))

    def when(self, event: DomainEvent) -> None:
        match event:
            case ClinicCreated():
                self.name, self.code = event.name, event.code
            case StaffRoleGranted():
                self.roles[event.user_id] = event.role.value
            case StaffRoleRevoked():
                self.roles.pop(event.user_id, None)

    def snapshot_state(self) -> dict[str, Any]:
        return {"name": self.name, "code": self.code, "roles": {str(k): v for k, v in self.roles.items()}}

    @classmethod
    def from_snapshot(cls, aggregate_id: UUID, version: int, state: dict[str, Any]) -> Self:
        clinic = cls(aggregate_id)
        clinic.name, clinic.code = state["name"], state["code"]
        clinic.roles = {int(k): v for k, v in state["roles"].items()}
        clinic.version = version
        return clinic
