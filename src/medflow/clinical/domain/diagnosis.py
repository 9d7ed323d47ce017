"""The Diagnosis aggregate: one entry of a patient's problem list, coded in ICD-10 or SNOMED CT.

A diagnosis is its own stream (as FHIR's Condition is its own resource), so that resolving one
problem never conflicts with a concurrent change to another.
"""

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import BeforeValidator

from medflow.clinical.domain.common import (
    ClinicalAggregate,
    Reason,
    ShortText,
    State,
    not_after_today,
    without_none,
)
from medflow.errors import InvalidInput, RuleViolated
from medflow.eventstore.events import DomainEvent, validate_event


class CodeSystem(StrEnum):
    ICD_10 = "ICD-10"
    SNOMED_CT = "SNOMED CT"


_SYSTEM_ALIASES = {
    "icd-10": CodeSystem.ICD_10, "icd10": CodeSystem.ICD_10, "icd-10-cm": CodeSystem.ICD_10,
    "http://hl7.org/fhir/sid/icd-10": CodeSystem.ICD_10,
    "http://hl7.org/fhir/sid/icd-10-cm": CodeSystem.ICD_10,
    "snomed ct": CodeSystem.SNOMED_CT, "snomed-ct": CodeSystem.SNOMED_CT,
    "snomed": CodeSystem.SNOMED_CT, "sct": CodeSystem.SNOMED_CT,
    "http://snomed.info/sct": CodeSystem.SNOMED_CT,
}


def _code_system(value: Any) -> Any:
    return _SYSTEM_ALIASES.get(value.strip().lower(), value) if isinstance(value, str) else value


# ICD-10 (WHO and -CM): a letter, two characters, then optionally a dot and up to four more.
ICD_10 = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")
# A SNOMED CT identifier: 6 to 18 digits, no leading zero.
SCTID = re.compile(r"^[1-9][0-9]{5,17}$")


def _normalise_code(system: CodeSystem, code: str) -> str:
    code = code.strip()
    if system is CodeSystem.ICD_10:
        code = code.upper()
        if "." not in code and len(code) > 3:
            code = f"{code[:3]}.{code[3:]}"  # billing files drop the dot: E119 is E11.9
    return code


class ClinicalStatus(StrEnum):
    """FHIR's condition-clinical codes."""

    ACTIVE = "active"
    RECURRENCE = "recurrence"
    RELAPSE = "relapse"
    INACTIVE = "inactive"
    REMISSION = "remission"
    RESOLVED = "resolved"

    @property
    def is_active(self) -> bool:
        """Tell whether the problem is current (active, recurred or relapsed)."""
        return self in ACTIVE_STATUSES


ACTIVE_STATUSES = frozenset({ClinicalStatus.ACTIVE, ClinicalStatus.RECURRENCE, ClinicalStatus.RELAPSE})


class DiagnosisAdded(DomainEvent):
    """A diagnosis was added to a patient's problem list."""

    effective_time_field = "onset_date"
    timeline_kind: ClassVar[str] = "diagnosis"

    patient_id: UUID
    encounter_id: UUID | None = None
    code_system: Annotated[CodeSystem, BeforeValidator(_code_system)]
    code: ShortText
    display: ShortText
    clinical_status: ClinicalStatus = ClinicalStatus.ACTIVE
    onset_date: date | None = None
    recorded_by: int | None = None

    def summary(self) -> str:
        return f"Diagnosis: {self.display} ({self.code_system.value} {self.code})"


class DiagnosisStatusChanged(DomainEvent):
    """A diagnosis's clinical status changed (for example active to remission, or a relapse)."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    timeline_kind: ClassVar[str] = "diagnosis"

    patient_id: UUID
    clinical_status: ClinicalStatus
    reason: Reason | None = None

    def summary(self) -> str:
        return f"Diagnosis status: {self.clinical_status.value}"


class DiagnosisResolved(DomainEvent):
    """A diagnosis was resolved on a date."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"note"})

    effective_time_field = "resolved_on"
    timeline_kind: ClassVar[str] = "diagnosis"

    patient_id: UUID
    resolved_on: date
    note: Reason | None = None

    def summary(self) -> str:
        return f"Diagnosis resolved on {self.resolved_on.isoformat()}"


class DiagnosisState(State):
    patient_id: UUID | None = None
    encounter_id: UUID | None = None
    code_system: CodeSystem | None = None
    code: str | None = None
    display: str | None = None
    clinical_status: ClinicalStatus | None = None
    onset_date: date | None = None
    resolved_on: date | None = None
    resolution_note: str | None = None
    recorded_by: int | None = None


class Diagnosis(ClinicalAggregate):
    """One coded problem of one patient and its clinical status over time."""

    aggregate_type = "Diagnosis"
    state_class = DiagnosisState

    def add(self, *, patient_id: UUID, today: date, recorded_by: int | None, **fields: Any) -> None:
        """Add the diagnosis; record a past, resolved problem by adding it and then resolving it."""
        if self.exists:
            raise RuleViolated(f"diagnosis {self.id} already added", code="already_added")
        system = _code_system(fields.get("code_system"))
        if isinstance(fields.get("code"), str) and system in set(CodeSystem):
            fields["code"] = _normalise_code(CodeSystem(system), fields["code"])
        event = validate_event(DiagnosisAdded, without_none(
            {"patient_id": patient_id, "recorded_by": recorded_by, **fields}
        ))
        pattern = ICD_10 if event.code_system is CodeSystem.ICD_10 else SCTID
        if not pattern.match(event.code):
            shape = ("a letter, two characters and an optional dotted suffix, e.g. E11.9"
                     if event.code_system is CodeSystem.ICD_10 else "6 to 18 digits")
            raise InvalidInput(
                f"code {event.code!r} is not a {event.code_system.value} code ({shape})", field="code"
            )
        if event.clinical_status is ClinicalStatus.RESOLVED:
            raise InvalidInput(
                "add the diagnosis first, then resolve it with its resolution date",
                field="clinical_status",
            )
        not_after_today(event.onset_date, today, "onset_date")
        self.record(event)

    def change_status(self, clinical_status: str, *, reason: str | None = None) -> None:
        """Move the diagnosis to another non-resolved status."""
        event = validate_event(DiagnosisStatusChanged, without_none(
            {"patient_id": self.s.patient_id, "clinical_status": clinical_status, "reason": reason}
        ))
        new, current = event.clinical_status, self.s.clinical_status
        if new is ClinicalStatus.RESOLVED:
            raise InvalidInput("resolve a diagnosis with its resolution date", field="clinical_status")
        if new is current:
            raise RuleViolated(f"the diagnosis is already {new.value}", code="status_unchanged")
        # FHIR: a problem that comes back after it went away is a recurrence or a relapse.
        if new is ClinicalStatus.ACTIVE and current is not None and not current.is_active:
            raise RuleViolated(
                f"a {current.value} diagnosis that comes back is a recurrence or a relapse",
                code="use_recurrence_or_relapse",
            )
        self.record(event)

    def resolve(self, *, resolved_on: date | str, today: date, note: str | None = None) -> None:
        """Resolve the diagnosis on a date no earlier than its onset."""
        if self.s.clinical_status is ClinicalStatus.RESOLVED:
            raise RuleViolated("the diagnosis is already resolved", code="already_resolved")
        event = validate_event(DiagnosisResolved, without_none(
            {"patient_id": self.s.patient_id, "resolved_on": resolved_on, "note": note}
        ))
        not_after_today(event.resolved_on, today, "resolved_on")
        if self.s.onset_date is not None and event.resolved_on < self.s.onset_date:
            raise InvalidInput("resolved_on must not be before onset_date", field="resolved_on")
        self.record(event)

    def when(self, event: DomainEvent) -> None:
        match event:
            case DiagnosisAdded():
                self.s = DiagnosisState(**event.model_dump())
            case DiagnosisStatusChanged():
                self.s.clinical_status = event.clinical_status
                if event.clinical_status is not ClinicalStatus.RESOLVED:
                    self.s.resolved_on = None
                    self.s.resolution_note = None
            case DiagnosisResolved():
                self.s.clinical_status = ClinicalStatus.RESOLVED
                self.s.resolved_on = event.resolved_on
                self.s.resolution_note = event.note
