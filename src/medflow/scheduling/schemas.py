"""Request and response schemas of the scheduling API. Inputs forbid unknown fields.

Inputs only check types; the domain checks values, so that both speak with one voice.
"""

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict


class StrictIn(Schema):
    model_config = ConfigDict(extra="forbid")


class AppointmentIn(StrictIn):
    patient_id: UUID
    provider_id: int
    starts_at: datetime
    ends_at: datetime | None = None
    duration_minutes: int | None = None
    kind: str | None = None
    reason: str | None = None


class RescheduleIn(StrictIn):
    starts_at: datetime
    ends_at: datetime | None = None
    duration_minutes: int | None = None
    reason: str | None = None


class CancelIn(StrictIn):
    reason: str | None = None
    by: Literal["patient", "clinic"] = "clinic"


class CheckInIn(StrictIn):
    at: datetime | None = None


class CompleteIn(StrictIn):
    at: datetime | None = None


class AppointmentOut(Schema):
    id: UUID
    patient_id: UUID
    clinic_id: UUID
    provider_id: int
    starts_at: datetime
    ends_at: datetime
    kind: str
    reason: str | None
    status: str
    checked_in_at: datetime | None
    completed_at: datetime | None
    cancel_reason: str | None
    cancelled_by: str | None
    version: int
    as_of: datetime | None = None


class AppointmentListOut(Schema):
    items: list[AppointmentOut]
    count: int
    as_of: datetime | None = None


class PatientBriefOut(Schema):
    id: UUID
    mrn: str
    given_names: str
    family_name: str
    birth_date: date


class DayEntryOut(AppointmentOut):
    patient: PatientBriefOut | None


class ProviderDayOut(Schema):
    provider_id: int
    date: date
    time_zone: str
    items: list[DayEntryOut]
    count: int
