"""The access aggregates, no Django here: Clinic (a tenant and its staff roster) and
BreakGlassGrant (a clinician's time-limited, read-only access to a patient of another clinic)."""

from datetime import datetime
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


BreakGlassReason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class BreakGlassAccessGranted(DomainEvent):
    """A clinician opened a patient of another clinic, read only, until `expires_at`."""

    patient_id: UUID
    clinic_id: UUID
    user_id: int
    username: str
    reason: BreakGlassReason
    expires_at: datetime


class BreakGlassGrant(Aggregate):
    """One break-glass grant: who may read which patient outside their clinics, why, until when."""

    aggregate_type = "BreakGlassGrant"

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.patient_id: UUID | None = None
        self.user_id: int | None = None
        self.expires_at: datetime | None = None

    def grant(self, *, patient_id: UUID, clinic_id: UUID, user_id: int, username: str, reason: str,
              expires_at: datetime) -> None:
        """Record the grant; a grant is never changed afterwards (it simply expires)."""
        if self.exists:
            raise RuleViolated("grant already recorded", code="already_exists")
        self.record(validate_event(BreakGlassAccessGranted, {
            "patient_id": patient_id, "clinic_id": clinic_id, "user_id": user_id,
            "username": username, "reason": reason, "expires_at": expires_at,
        }))

    def when(self, event: DomainEvent) -> None:
        if isinstance(event, BreakGlassAccessGranted):
            self.patient_id, self.user_id = event.patient_id, event.user_id
            self.expires_at = event.expires_at

    def snapshot_state(self) -> dict[str, Any]:
        return {"patient_id": str(self.patient_id), "user_id": self.user_id,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}

    @classmethod
    def from_snapshot(cls, aggregate_id: UUID, version: int, state: dict[str, Any]) -> Self:
        grant = cls(aggregate_id)
        grant.patient_id = UUID(state["patient_id"])
        grant.user_id = state["user_id"]
        grant.expires_at = datetime.fromisoformat(state["expires_at"]) if state["expires_at"] else None
        grant.version = version
        return grant
