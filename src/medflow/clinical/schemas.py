"""Request and response schemas of the clinical API. Inputs forbid unknown fields.

Inputs keep codes and enumerations as plain strings where the domain gives the better message
(code shapes, code-system aliases, vital-sign ranges with their units).
"""

from datetime import date, datetime
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict

from medflow.api_common import WriteOut


class StrictIn(Schema):
    model_config = ConfigDict(extra="forbid")


# Encounters -------------------------------------------------------------------------------------

class EncounterIn(StrictIn):
    provider_id: int | None = None
    kind: str = "ambulatory"
    appointment_id: UUID | None = None
    reason: str | None = None
    started_at: datetime | None = None


class EncounterEndIn(StrictIn):
    ended_at: datetime | None = None
    disposition: str | None = None
    closing_summary: str | None = None


class Recorded(Schema):
    version: int
    created_at: datetime
    updated_at: datetime


class EncounterOut(Recorded):
    id: UUID
    patient_id: UUID
    clinic_id: UUID
    provider_id: int | None
    kind: str
    appointment_id: UUID | None
    reason: str | None
    status: str
    started_at: datetime
    ended_at: datetime | None
    disposition: str | None
    closing_summary: str | None
    vital_signs_count: int


class EncounterListOut(Schema):
    items: list[EncounterOut]
    count: int
    as_of: datetime | None


# Vital signs ------------------------------------------------------------------------------------

class VitalSignsIn(StrictIn):
    measured_at: datetime | None = None
    encounter_id: UUID | None = None
    systolic: int | None = None
    diastolic: int | None = None
    heart_rate: int | None = None
    respiratory_rate: int | None = None
    temperature_c: float | None = None
    spo2: int | None = None
    weight_kg: float | None = None
    height_cm: float | None = None


class VitalSignsWriteOut(WriteOut):
    """The owning stream (the encounter, or the patient's chart) and the recorded event."""

    event_id: UUID
    stream: str


class VitalSignsOut(Schema):
    event_id: UUID
    encounter_id: UUID | None
    measured_at: datetime
    recorded_at: datetime
    systolic: int | None = None
    diastolic: int | None = None
    heart_rate: int | None = None
    respiratory_rate: int | None = None
    temperature_c: float | None = None
    spo2: int | None = None
    weight_kg: float | None = None
    height_cm: float | None = None


class LatestVitalOut(Schema):
    value: float
    unit: str
    measured_at: datetime
    event_id: UUID
    encounter_id: UUID | None


class VitalSignsListOut(Schema):
    items: list[VitalSignsOut]
    count: int
    latest: dict[str, LatestVitalOut]
    as_of: datetime | None


# Diagnoses --------------------------------------------------------------------------------------

class DiagnosisIn(StrictIn):
    code_system: str
    code: str
    display: str
    clinical_status: str = "active"
    onset_date: date | None = None
    encounter_id: UUID | None = None


class DiagnosisStatusIn(StrictIn):
    clinical_status: str
    reason: str | None = None


class DiagnosisResolveIn(StrictIn):
    resolved_on: date | None = None
    note: str | None = None


class DiagnosisOut(Recorded):
    id: UUID
    patient_id: UUID
    encounter_id: UUID | None
    code_system: str
    code: str
    display: str
    clinical_status: str
    onset_date: date | None
    resolved_on: date | None
    resolution_note: str | None
    recorded_by: int | None


class DiagnosisListOut(Schema):
    items: list[DiagnosisOut]
    count: int
    as_of: datetime | None


# Allergies --------------------------------------------------------------------------------------

class ReactionIn(StrictIn):
    manifestation: str
    code: str | None = None
    severity: str | None = None


class AllergyIn(StrictIn):
    code_system: str
    code: str
    display: str
    type: str = "allergy"
    category: str
    criticality: str | None = None
    reactions: list[ReactionIn] = []
    onset_date: date | None = None
    note: str | None = None
    encounter_id: UUID | None = None


class AllergyResolveIn(StrictIn):
    reason: str | None = None
    resolved_on: date | None = None


class AllergyRefuteIn(StrictIn):
    reason: str | None = None
    entered_in_error: bool = False


class ReactionOut(Schema):
    manifestation: str
    code: str | None
    severity: str | None


class AllergyOut(Recorded):
    id: UUID
    patient_id: UUID
    encounter_id: UUID | None
    code_system: str
    code: str
    display: str
    type: str
    category: str
    criticality: str | None
    reactions: list[ReactionOut]
    onset_date: date | None
    note: str | None
    recorded_by: int | None
    status: str
    resolved_on: date | None
    status_reason: str | None


class AllergyListOut(Schema):
    items: list[AllergyOut]
    count: int
    as_of: datetime | None


# Prescriptions ----------------------------------------------------------------------------------

class PrescriptionIn(StrictIn):
    drug_code: str
    drug_name: str
    dose: str
    route: str
    frequency: str
    reason: str | None = None
    needs_approval: bool = False
    encounter_id: UUID | None = None


class DiscontinueIn(StrictIn):
    reason: str | None = None


class PrescriptionOut(Recorded):
    id: UUID
    patient_id: UUID
    encounter_id: UUID | None
    drug_code: str
    drug_name: str
    dose: str
    route: str
    frequency: str
    prescriber_id: int | None
    reason: str | None
    needs_approval: bool
    status: str
    approved: bool
    approved_by: int | None
    discontinued_by: int | None
    discontinued_reason: str | None


class PrescriptionListOut(Schema):
    items: list[PrescriptionOut]
    count: int
    as_of: datetime | None


# Notes ------------------------------------------------------------------------------------------

class NoteIn(StrictIn):
    subjective: str = ""
    objective: str = ""
    assessment: str = ""
    plan: str = ""
    encounter_id: UUID | None = None


class NotePatchIn(StrictIn):
    subjective: str = None  # type: ignore[assignment]
    objective: str = None  # type: ignore[assignment]
    assessment: str = None  # type: ignore[assignment]
    plan: str = None  # type: ignore[assignment]


class AmendIn(StrictIn):
    amendment: str
    reason: str | None = None


class AmendmentOut(Schema):
    amendment: str
    reason: str
    amended_by: int | None
    amended_at: datetime


class NoteOut(Recorded):
    id: UUID
    patient_id: UUID
    encounter_id: UUID | None
    status: str
    subjective: str
    objective: str
    assessment: str
    plan: str
    author_id: int | None
    revisions: int
    signed_by: int | None
    signed_at: datetime | None
    amendments: list[AmendmentOut]


class NoteListOut(Schema):
    items: list[NoteOut]
    count: int
    as_of: datetime | None


# The chart --------------------------------------------------------------------------------------

class ChartPatientOut(Schema):
    id: UUID
    clinic_id: UUID
    mrn: str
    given_names: str
    family_name: str
    birth_date: date
    sex: str
    archived: bool
    version: int


class ChartOut(Schema):
    patient: ChartPatientOut
    active_problems: list[DiagnosisOut]
    allergies: list[AllergyOut]
    medications: list[PrescriptionOut]
    latest_vitals: dict[str, LatestVitalOut]
    recent_notes: list[NoteOut]
    open_encounters: list[EncounterOut]
    as_of: datetime | None
