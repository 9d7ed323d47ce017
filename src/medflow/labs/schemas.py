"""Request and response schemas of the labs API. Inputs forbid unknown fields."""

from datetime import datetime
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict, Field

from medflow.api_common import WriteOut
from medflow.labs.domain import AbnormalFlag, Number, Priority


class StrictIn(Schema):
    model_config = ConfigDict(extra="forbid")


class LabTestIn(StrictIn):
    loinc_code: str
    display: str


class LabOrderIn(StrictIn):
    tests: list[LabTestIn]
    priority: Priority = Priority.ROUTINE
    reason: str | None = None
    encounter_id: UUID | None = None
    ordering_provider_id: int | None = None


class LabResultIn(StrictIn):
    result_id: UUID | None = None
    loinc_code: str
    display: str
    value: Number | None = None
    value_text: str | None = None
    unit: str | None = None
    reference_low: Number | None = None
    reference_high: Number | None = None
    critical_low: Number | None = None
    critical_high: Number | None = None
    abnormal_flag: AbnormalFlag | None = None
    effective_at: datetime


class LabResultCorrectionIn(StrictIn):
    value: Number | None = None
    value_text: str | None = None
    unit: str | None = None
    reference_low: Number | None = None
    reference_high: Number | None = None
    critical_low: Number | None = None
    critical_high: Number | None = None
    abnormal_flag: AbnormalFlag | None = None
    effective_at: datetime = None  # type: ignore[assignment]
    reason: str = Field(min_length=1)


class ReasonIn(StrictIn):
    reason: str = Field(min_length=1)


class LabResultWriteOut(WriteOut):
    """`id` is the result's; `version` is its order's, for the next If-Match."""

    order_id: UUID


class LabTestOut(Schema):
    loinc_code: str
    display: str


class LabOrderOut(Schema):
    id: UUID
    patient_id: UUID
    clinic_id: UUID
    ordering_provider_id: int
    tests: list[LabTestOut]
    priority: Priority
    reason: str
    encounter_id: UUID | None
    status: str
    result_count: int
    placed_at: datetime
    updated_at: datetime
    version: int


class LabResultOut(Schema):
    id: UUID
    patient_id: UUID
    order_id: UUID
    loinc_code: str
    display: str
    value: float | None
    value_text: str | None
    unit: str | None
    reference_low: float | None
    reference_high: float | None
    critical_low: float | None
    critical_high: float | None
    abnormal_flag: AbnormalFlag | None
    status: str
    effective_at: datetime
    recorded_at: datetime
    updated_at: datetime
    version: int


class LabOrderDetailOut(LabOrderOut):
    results: list[LabResultOut]
    as_of: datetime | None = None


class LabOrderListOut(Schema):
    items: list[LabOrderOut]
    count: int
    as_of: datetime | None = None


class LabResultListOut(Schema):
    items: list[LabResultOut]
    count: int
    as_of: datetime | None = None

