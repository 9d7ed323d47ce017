"""The Prescription aggregate: a medication order, its approval, and its discontinuation.

A prescription that needs approval (a controlled drug, a trainee's order, a clinic's policy) is
pending until a second doctor approves it: the prescriber cannot approve their own order, or the
approval would check nothing.
"""

from enum import StrEnum
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import StringConstraints

from medflow.clinical.domain.common import (
    ClinicalAggregate,
    Reason,
    ShortText,
    State,
    without_none,
)
from medflow.errors import InvalidInput, RuleViolated
from medflow.eventstore.events import DomainEvent, validate_event

# An RxNorm concept unique identifier (RXCUI): digits only.
RxCui = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,10}$")]


class Route(StrEnum):
    """Routes of administration."""

    ORAL = "oral"
    SUBLINGUAL = "sublingual"
    BUCCAL = "buccal"
    IV = "iv"
    IM = "im"
    SC = "sc"
    INTRADERMAL = "intradermal"
    TOPICAL = "topical"
    TRANSDERMAL = "transdermal"
    INHALED = "inhaled"
    NASAL = "nasal"
    OPHTHALMIC = "ophthalmic"
    OTIC = "otic"
    RECTAL = "rectal"
    VAGINAL = "vaginal"
    OTHER = "other"


class MedicationStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DISCONTINUED = "discontinued"


class MedicationPrescribed(DomainEvent):
    """A doctor prescribed a medication; `needs_approval` holds it pending a second doctor."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    timeline_kind: ClassVar[str] = "medication"

    patient_id: UUID
    encounter_id: UUID | None = None
    drug_code: RxCui
    drug_name: ShortText
    dose: ShortText
    route: Route
    frequency: ShortText
    prescriber_id: int | None = None
    reason: Reason | None = None
    needs_approval: bool = False

    def summary(self) -> str:
        pending = " (awaiting approval)" if self.needs_approval else ""
        return f"Prescribed {self.drug_name} {self.dose} {self.route.value} {self.frequency}{pending}"


class PrescriptionApproved(DomainEvent):
    """A second doctor approved a pending prescription."""

    timeline_kind: ClassVar[str] = "medication"

    patient_id: UUID
    approved_by: int | None = None

    def summary(self) -> str:
        return "Prescription approved"


class MedicationDiscontinued(DomainEvent):
    """A prescription was stopped, for a reason."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    timeline_kind: ClassVar[str] = "medication"

    patient_id: UUID
    reason: Reason
    discontinued_by: int | None = None

    def summary(self) -> str:
        return f"Medication discontinued: {self.reason}"


class PrescriptionState(State):
    patient_id: UUID | None = None
    encounter_id: UUID | None = None
    drug_code: str | None = None
    drug_name: str | None = None
    dose: str | None = None
    route: Route | None = None
    frequency: str | None = None
    prescriber_id: int | None = None
    reason: str | None = None
    needs_approval: bool = False
    status: MedicationStatus | None = None
    approved: bool = False
    approved_by: int | None = None
    discontinued_by: int | None = None
    discontinued_reason: str | None = None


class Prescription(ClinicalAggregate):
    """One medication order: pending (when it needs approval), active, then discontinued."""

    aggregate_type = "Prescription"
    state_class = PrescriptionState

    def prescribe(self, *, patient_id: UUID, prescriber_id: int | None, **fields: Any) -> None:
        """Order a medication."""
        if self.exists:
            raise RuleViolated(f"prescription {self.id} already exists", code="already_prescribed")
        self.record(validate_event(MedicationPrescribed, without_none(
            {"patient_id": patient_id, "prescriber_id": prescriber_id, **fields}
        )))

    def approve(self, *, approved_by: int | None) -> None:
        """Approve a pending prescription; the prescriber may not approve their own."""
        if self.s.status is MedicationStatus.DISCONTINUED:
            raise RuleViolated("a discontinued prescription cannot be approved", code="discontinued")
        if self.s.approved:
            raise RuleViolated("the prescription is already approved", code="already_approved")
        if not self.s.needs_approval:
            raise RuleViolated("the prescription does not need approval", code="approval_not_needed")
        if approved_by is not None and approved_by == self.s.prescriber_id:
            raise RuleViolated(
                "a prescription that needs approval is approved by another doctor than its prescriber",
                code="self_approval",
            )
        self.record(PrescriptionApproved.model_validate(without_none(
            {"patient_id": self.s.patient_id, "approved_by": approved_by}
        )))

    def discontinue(self, *, reason: str | None, discontinued_by: int | None) -> None:
        """Stop the medication (or withdraw a pending order); the reason is required."""
        if self.s.status is MedicationStatus.DISCONTINUED:
            raise RuleViolated("the medication is already discontinued", code="already_discontinued")
        if reason is None or not reason.strip():
            raise InvalidInput("reason is required to discontinue a medication", field="reason")
        self.record(validate_event(MedicationDiscontinued, without_none(
            {"patient_id": self.s.patient_id, "reason": reason, "discontinued_by": discontinued_by}
        )))

    def when(self, event: DomainEvent) -> None:
        match event:
            case MedicationPrescribed():
                self.s = PrescriptionState(
                    **event.model_dump(),
                    status=MedicationStatus.PENDING if event.needs_approval else MedicationStatus.ACTIVE,
                )
            case PrescriptionApproved():
                self.s.status = MedicationStatus.ACTIVE
                self.s.approved = True
                self.s.approved_by = event.approved_by
            case MedicationDiscontinued():
                self.s.status = MedicationStatus.DISCONTINUED
                self.s.discontinued_by = event.discontinued_by
                self.s.discontinued_reason = event.reason
