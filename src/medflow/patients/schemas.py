"""Request and response schemas of the patients API. Inputs forbid unknown fields."""

from datetime import date, datetime
from typing import Any
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict, Field

from medflow.patients.domain import Address, Sex


class StrictIn(Schema):
    model_config = ConfigDict(extra="forbid")


class AddressIn(StrictIn):
    lines: list[str] = Field(default_factory=list, max_length=4)
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""


class PatientIn(StrictIn):
    clinic_id: UUID | None = None
    mrn: str
    given_names: str
    family_name: str
    birth_date: date
    sex: Sex = Sex.UNKNOWN
    phone: str | None = None
    email: str | None = None
    address: AddressIn | None = None


class PatientPatchIn(StrictIn):
    mrn: str = None  # type: ignore[assignment]
    given_names: str = None  # type: ignore[assignment]
    family_name: str = None  # type: ignore[assignment]
    birth_date: date = None  # type: ignore[assignment]
    sex: Sex = None  # type: ignore[assignment]
    phone: str | None = None
    email: str | None = None
    address: AddressIn | None = None


class ArchiveIn(StrictIn):
    reason: str | None = Field(default=None, max_length=200)


class ForgetIn(StrictIn):
    reason: str = Field(min_length=1, max_length=500)
    override_retention: bool = False


class PatientOut(Schema):
    id: UUID
    clinic_id: UUID
    mrn: str
    given_names: str
    family_name: str
    birth_date: date
    sex: Sex
    phone: str | None = None
    email: str | None = None
    address: Address | None = None
    archived: bool
    version: int
    as_of: datetime | None = None


class PatientListOut(Schema):
    items: list[PatientOut]
    count: int
    limit: int
    offset: int


class HistoryEntryOut(Schema):
    event_id: UUID
    type: str
    version: int
    position: int
    timestamp: datetime
    who: str | None
    user_id: int | None
    role: str | None
    reason: str | None
    data: dict[str, Any]
    metadata: dict[str, Any]
