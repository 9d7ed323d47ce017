"""The Allergy aggregate: one allergy or intolerance of a patient to a substance (FHIR's
AllergyIntolerance), coded in SNOMED CT or, for medications, RxNorm.

An allergy is its own stream, as a diagnosis is. It is recorded active; it leaves the active list
either resolved (the patient no longer reacts, e.g. outgrew it or passed a challenge) or refuted
(tests showed there is no allergy, or it was entered in error). Both need a reason: taking an
allergy off the list is what a later prescriber relies on. FHIR's clinical and verification
statuses are folded into one `status` (active, resolved, refuted, entered-in-error).
"""

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from medflow.clinical.domain.common import (
    ClinicalAggregate,
    Reason,
    ShortText,
    State,
    not_after_today,
    without_none,
)
from medflow.clinical.domain.diagnosis import SCTID
from medflow.errors import InvalidInput, RuleViolated
from medflow.eventstore.events import DomainEvent, validate_event


class AllergyCodeSystem(StrEnum):
    SNOMED_CT = "SNOMED CT"
    RXNORM = "RxNorm"


_SYSTEM_ALIASES = {
    "snomed ct": AllergyCodeSystem.SNOMED_CT, "snomed-ct": AllergyCodeSystem.SNOMED_CT,
    "snomed": AllergyCodeSystem.SNOMED_CT, "sct": AllergyCodeSystem.SNOMED_CT,
    "http://snomed.info/sct": AllergyCodeSystem.SNOMED_CT,
    "rxnorm": AllergyCodeSystem.RXNORM, "rxcui": AllergyCodeSystem.RXNORM,
    "http://www.nlm.nih.gov/research/umls/rxnorm": AllergyCodeSystem.RXNORM,
}


def _code_system(value: Any) -> Any:
    return _SYSTEM_ALIASES.get(value.strip().lower(), value) if isinstance(value, str) else value


# An RxNorm concept unique identifier (RXCUI): up to 10 digits, no leading zero.
RXCUI = re.compile(r"^[1-9][0-9]{0,9}$")
CODE_SHAPES = {
    AllergyCodeSystem.SNOMED_CT: (SCTID, "6 to 18 digits"),
    AllergyCodeSystem.RXNORM: (RXCUI, "up to 10 digits"),
}


class AllergyType(StrEnum):
    """FHIR's allergy-intolerance-type: an immune reaction, or a non-immune intolerance."""

    ALLERGY = "allergy"
    INTOLERANCE = "intolerance"


class AllergyCategory(StrEnum):
    FOOD = "food"
    MEDICATION = "medication"
    ENVIRONMENT = "environment"
    BIOLOGIC = "biologic"


class Criticality(StrEnum):
    """FHIR's allergy-intolerance-criticality: the potential for a serious, life-threatening
    reaction next time (not the severity of a past one)."""

    LOW = "low"
    HIGH = "high"
    UNABLE_TO_ASSESS = "unable-to-assess"


class Severity(StrEnum):
    """The severity of one past reaction."""

    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"


class AllergyStatus(StrEnum):
    ACTIVE = "active"
    RESOLVED = "resolved"
    REFUTED = "refuted"
    ENTERED_IN_ERROR = "entered-in-error"


class Refutation(StrEnum):
    """Why an allergy never held: FHIR's verification statuses that take it off the record."""

    REFUTED = "refuted"
    ENTERED_IN_ERROR = "entered-in-error"


REFUTATIONS = frozenset({AllergyStatus.REFUTED, AllergyStatus.ENTERED_IN_ERROR})


def _lower(value: Any) -> Any:
    # Synthea and many feeds write enumerations in capitals (SEVERE).
    return value.strip().lower() if isinstance(value, str) else value


class Reaction(BaseModel):
    """One reaction the patient had: what showed (e.g. hives), its SNOMED CT code, how severe."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifestation: ShortText
    code: ShortText | None = None
    severity: Annotated[Severity, BeforeValidator(_lower)] | None = None


class AllergyRecorded(DomainEvent):
    """An allergy or intolerance was added to a patient's record."""

    # The note is free text about the patient; coded fields are not.
    personal_fields: ClassVar[frozenset[str]] = frozenset({"note"})

    effective_time_field = "onset_date"
    timeline_kind: ClassVar[str] = "allergy"

    patient_id: UUID
    encounter_id: UUID | None = None
    code_system: Annotated[AllergyCodeSystem, BeforeValidator(_code_system)]
    code: ShortText
    display: ShortText
    type: Annotated[AllergyType, BeforeValidator(_lower)] = AllergyType.ALLERGY
    category: Annotated[AllergyCategory, BeforeValidator(_lower)]
    criticality: Annotated[Criticality, BeforeValidator(_lower)] | None = None
    reactions: list[Reaction] = Field(default_factory=list, max_length=10)
    onset_date: date | None = None
    note: Reason | None = None
    recorded_by: int | None = None

    def summary(self) -> str:
        what = "Allergy" if self.type is AllergyType.ALLERGY else "Intolerance"
        critical = f", {self.criticality.value} criticality" if self.criticality else ""
        return f"{what}: {self.display} ({self.category.value}{critical})"


class AllergyResolved(DomainEvent):
    """The patient no longer has the allergy (outgrown, desensitised, tolerated a challenge)."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    effective_time_field = "resolved_on"
    timeline_kind: ClassVar[str] = "allergy"

    patient_id: UUID
    resolved_on: date
    reason: Reason

    def summary(self) -> str:
        return f"Allergy resolved on {self.resolved_on.isoformat()}"


class AllergyRefuted(DomainEvent):
    """The allergy was never there: refuted by tests or history, or entered in error."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    timeline_kind: ClassVar[str] = "allergy"

    patient_id: UUID
    verification_status: Refutation = Refutation.REFUTED
    reason: Reason

    def summary(self) -> str:
        if self.verification_status is Refutation.ENTERED_IN_ERROR:
            return "Allergy entered in error"
        return "Allergy refuted"


class AllergyState(State):
    patient_id: UUID | None = None
    encounter_id: UUID | None = None
    code_system: AllergyCodeSystem | None = None
    code: str | None = None
    display: str | None = None
    type: AllergyType | None = None
    category: AllergyCategory | None = None
    criticality: Criticality | None = None
    reactions: list[Reaction] = []
    onset_date: date | None = None
    note: str | None = None
    recorded_by: int | None = None
    status: AllergyStatus | None = None
    resolved_on: date | None = None
    status_reason: str | None = None


class Allergy(ClinicalAggregate):
    """One allergy or intolerance of one patient, and whether it still holds."""

    aggregate_type = "Allergy"
    state_class = AllergyState

    def add(self, *, patient_id: UUID, today: date, recorded_by: int | None, **fields: Any) -> None:
        """Record the allergy, active; record a past one by adding it and then resolving it."""
        if self.exists:
            raise RuleViolated(f"allergy {self.id} already recorded", code="already_recorded")
        event = validate_event(AllergyRecorded, without_none(
            {"patient_id": patient_id, "recorded_by": recorded_by, **fields}
        ))
        pattern, shape = CODE_SHAPES[event.code_system]
        if not pattern.match(event.code):
            raise InvalidInput(
                f"code {event.code!r} is not a {event.code_system.value} code ({shape})", field="code"
            )
        for n, reaction in enumerate(event.reactions):
            if reaction.code is not None and not SCTID.match(reaction.code):
                raise InvalidInput(
                    f"reaction code {reaction.code!r} is not a SNOMED CT code (6 to 18 digits)",
                    field=f"reactions.{n}.code",
                )
        not_after_today(event.onset_date, today, "onset_date")
        self.record(event)

    def resolve(self, *, resolved_on: date | str, today: date, reason: str | None) -> None:
        """Take the allergy off the active list from a date: the patient no longer reacts."""
        if self.s.status is AllergyStatus.RESOLVED:
            raise RuleViolated("the allergy is already resolved", code="already_resolved")
        if self.s.status in REFUTATIONS:
            raise RuleViolated(f"the allergy is marked {self.s.status.value}: there is nothing to"
                               " resolve", code="allergy_refuted")
        event = validate_event(AllergyResolved, without_none(
            {"patient_id": self.s.patient_id, "resolved_on": resolved_on, "reason": reason}
        ))
        not_after_today(event.resolved_on, today, "resolved_on")
        if self.s.onset_date is not None and event.resolved_on < self.s.onset_date:
            raise InvalidInput("resolved_on must not be before onset_date", field="resolved_on")
        self.record(event)

    def refute(self, *, reason: str | None, entered_in_error: bool = False) -> None:
        """Mark the allergy as refuted (or entered in error); a resolved one may be refuted too."""
        if self.s.status in REFUTATIONS:
            raise RuleViolated(f"the allergy is already marked {self.s.status.value}",
                               code="already_refuted")
        status = Refutation.ENTERED_IN_ERROR if entered_in_error else Refutation.REFUTED
        self.record(validate_event(AllergyRefuted, without_none(
            {"patient_id": self.s.patient_id, "verification_status": status, "reason": reason}
        )))

    def when(self, event: DomainEvent) -> None:
        match event:
            case AllergyRecorded():
                self.s = AllergyState(**event.model_dump(), status=AllergyStatus.ACTIVE)
            case AllergyResolved():
                self.s.status = AllergyStatus.RESOLVED
                self.s.resolved_on = event.resolved_on
                self.s.status_reason = event.reason
            case AllergyRefuted():
                self.s.status = AllergyStatus(event.verification_status.value)
                self.s.status_reason = event.reason
