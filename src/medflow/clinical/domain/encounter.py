"""The Encounter aggregate: a visit, from start to end, and the vital signs measured in it."""

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime

from medflow.clinical.domain.common import (
    ClinicalAggregate,
    Reason,
    State,
    Text,
    not_in_future,
    without_none,
)
from medflow.clinical.domain.vitals import VitalSignsRecorded, vital_signs_event
from medflow.errors import InvalidInput, RuleViolated
from medflow.eventstore.events import DomainEvent, validate_event


class EncounterKind(StrEnum):
    """The setting of an encounter (after FHIR's v3 ActEncounterCode)."""

    AMBULATORY = "ambulatory"
    EMERGENCY = "emergency"
    INPATIENT = "inpatient"
    OBSERVATION = "observation"
    VIRTUAL = "virtual"
    HOME = "home"
    WALK_IN = "walk_in"


class Disposition(StrEnum):
    """Where the patient went when the encounter ended."""

    HOME = "home"
    ADMITTED = "admitted"
    TRANSFERRED = "transferred"
    REFERRED = "referred"
    LEFT_AGAINST_ADVICE = "left_against_advice"
    DECEASED = "deceased"
    OTHER = "other"


class EncounterStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"


class EncounterStarted(DomainEvent):
    """A patient's encounter with a provider began, from an appointment or as a walk-in."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    effective_time_field = "started_at"
    timeline_kind: ClassVar[str] = "encounter"

    patient_id: UUID
    clinic_id: UUID
    provider_id: int | None = None
    kind: EncounterKind
    appointment_id: UUID | None = None
    reason: Reason | None = None
    started_at: AwareDatetime

    def summary(self) -> str:
        kind = self.kind.value.replace("_", "-").capitalize()
        return f"{kind} encounter started" + (f": {self.reason}" if self.reason else "")


class EncounterEnded(DomainEvent):
    """An encounter ended; `closing_summary` is the provider's wrap-up in a few lines."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"closing_summary"})

    effective_time_field = "ended_at"
    timeline_kind: ClassVar[str] = "encounter"

    patient_id: UUID
    ended_at: AwareDatetime
    disposition: Disposition | None = None
    closing_summary: Text | None = None

    def summary(self) -> str:
        return "Encounter ended" + (
            f" ({self.disposition.value.replace('_', ' ')})" if self.disposition else ""
        )


class EncounterState(State):
    patient_id: UUID | None = None
    clinic_id: UUID | None = None
    provider_id: int | None = None
    kind: EncounterKind | None = None
    appointment_id: UUID | None = None
    reason: str | None = None
    status: EncounterStatus | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    disposition: Disposition | None = None
    closing_summary: str | None = None
    vital_signs_count: int = 0


class Encounter(ClinicalAggregate):
    """One encounter of one patient. Ends once; after that nothing more is recorded on it."""

    aggregate_type = "Encounter"
    state_class = EncounterState

    # Commands -----------------------------------------------------------------------------

    def start(
        self, *, patient_id: UUID, clinic_id: UUID, provider_id: int | None, kind: str,
        appointment_id: UUID | None, reason: str | None, started_at: datetime | str,
        now: datetime,
    ) -> None:
        """Start the encounter; a walk-in has no appointment."""
        if self.exists:
            raise RuleViolated(f"encounter {self.id} already started", code="already_started")
        event = validate_event(EncounterStarted, without_none({
            "patient_id": patient_id, "clinic_id": clinic_id, "provider_id": provider_id,
            "kind": kind, "appointment_id": appointment_id, "reason": reason,
            "started_at": started_at,
        }))
        if event.kind is EncounterKind.WALK_IN and event.appointment_id is not None:
            raise InvalidInput("a walk-in encounter has no appointment", field="appointment_id")
        not_in_future(event.started_at, now, "started_at")
        self.record(event)

    def end(
        self, *, ended_at: datetime | str, disposition: str | None, closing_summary: str | None,
        now: datetime,
    ) -> None:
        """End the encounter, once."""
        self.require_open()
        event = validate_event(EncounterEnded, without_none({
            "patient_id": self.s.patient_id, "ended_at": ended_at, "disposition": disposition,
            "closing_summary": closing_summary,
        }))
        not_in_future(event.ended_at, now, "ended_at")
        if self.s.started_at is not None and event.ended_at < self.s.started_at:
            raise InvalidInput("ended_at must not be before the encounter started", field="ended_at")
        self.record(event)

    def record_vital_signs(
        self, *, patient_id: UUID, measured_at: datetime | str, now: datetime, values: dict[str, Any]
    ) -> None:
        """Record vital signs measured during this (open) encounter."""
        if patient_id != self.s.patient_id:
            raise InvalidInput(
                f"encounter {self.id} is not an encounter of patient {patient_id}",
                field="encounter_id",
            )
        self.require_open()
        self.record(vital_signs_event(
            patient_id=patient_id, encounter_id=self.id, measured_at=measured_at, now=now,
            values=values,
        ))

    def require_open(self) -> None:
        """Refuse to change an encounter that has ended."""
        if self.s.status is EncounterStatus.FINISHED:
            raise RuleViolated(
                f"encounter {self.id} has ended; nothing more is recorded on it",
                code="encounter_ended",
            )

    @property
    def ended(self) -> bool:
        """Tell whether the encounter has ended."""
        return self.s.status is EncounterStatus.FINISHED

    # State --------------------------------------------------------------------------------

    def when(self, event: DomainEvent) -> None:
        match event:
            case EncounterStarted():
                self.s = EncounterState(
                    patient_id=event.patient_id, clinic_id=event.clinic_id,
                    provider_id=event.provider_id, kind=event.kind,
                    appointment_id=event.appointment_id, reason=event.reason,
                    status=EncounterStatus.IN_PROGRESS, started_at=event.started_at,
                )
            case EncounterEnded():
                self.s.status = EncounterStatus.FINISHED
                self.s.ended_at = event.ended_at
                self.s.disposition = event.disposition
                self.s.closing_summary = event.closing_summary
            case VitalSignsRecorded():
                self.s.vital_signs_count += 1
