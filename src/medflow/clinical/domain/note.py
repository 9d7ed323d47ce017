"""The ClinicalNote aggregate, in SOAP form: drafted, revised while a draft, signed, amended.

A signed note is never edited: what was signed stays as it was, and later corrections are
amendments, each with its reason, shown beside the original.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel

from medflow.clinical.domain.common import (
    ClinicalAggregate,
    Reason,
    SectionText,
    State,
    Text,
    without_none,
)
from medflow.errors import InvalidInput, RuleViolated
from medflow.eventstore.events import DomainEvent, validate_event

SECTIONS = ("subjective", "objective", "assessment", "plan")


class NoteStatus(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"
    AMENDED = "amended"


class NoteDrafted(DomainEvent):
    """A clinician started a note (subjective, objective, assessment, plan)."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"subjective", "objective", "assessment", "plan"})

    timeline_kind: ClassVar[str] = "note"

    patient_id: UUID
    encounter_id: UUID | None = None
    subjective: SectionText = ""
    objective: SectionText = ""
    assessment: SectionText = ""
    plan: SectionText = ""
    author_id: int | None = None

    def summary(self) -> str:
        return "Note drafted"


class NoteRevised(DomainEvent):
    """Sections of a draft changed; carries only the sections that did."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"subjective", "objective", "assessment", "plan"})

    timeline_kind: ClassVar[str] = "note"

    patient_id: UUID
    subjective: SectionText = None  # type: ignore[assignment]
    objective: SectionText = None  # type: ignore[assignment]
    assessment: SectionText = None  # type: ignore[assignment]
    plan: SectionText = None  # type: ignore[assignment]
    revised_by: int | None = None

    def summary(self) -> str:
        changed = [s for s in SECTIONS if s in self.model_fields_set]
        return f"Note draft revised ({', '.join(changed)})"


class NoteSigned(DomainEvent):
    """A doctor signed the note; from now on it only takes amendments."""

    effective_time_field = "signed_at"
    timeline_kind: ClassVar[str] = "note"

    patient_id: UUID
    signed_by: int | None = None
    signed_at: AwareDatetime

    def summary(self) -> str:
        return "Note signed"


class NoteAmended(DomainEvent):
    """An addendum to a signed note, with the reason for it."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"amendment", "reason"})

    effective_time_field = "amended_at"
    timeline_kind: ClassVar[str] = "note"

    patient_id: UUID
    amendment: Text
    reason: Reason
    amended_by: int | None = None
    amended_at: AwareDatetime

    def summary(self) -> str:
        return f"Note amended: {self.reason}"


class Amendment(BaseModel):
    amendment: str
    reason: str
    amended_by: int | None = None
    amended_at: datetime


class NoteState(State):
    patient_id: UUID | None = None
    encounter_id: UUID | None = None
    status: NoteStatus | None = None
    subjective: str = ""
    objective: str = ""
    assessment: str = ""
    plan: str = ""
    author_id: int | None = None
    revisions: int = 0
    signed_by: int | None = None
    signed_at: datetime | None = None
    amendments: list[Amendment] = []


class ClinicalNote(ClinicalAggregate):
    """One SOAP note of one patient."""

    aggregate_type = "ClinicalNote"
    state_class = NoteState

    def draft(self, *, patient_id: UUID, author_id: int | None, **fields: Any) -> None:
        """Start a note with at least one section written."""
        if self.exists:
            raise RuleViolated(f"note {self.id} already exists", code="already_drafted")
        event = validate_event(NoteDrafted, without_none(
            {"patient_id": patient_id, "author_id": author_id, **fields}
        ))
        if not any(getattr(event, section) for section in SECTIONS):
            raise InvalidInput(f"write at least one of {', '.join(SECTIONS)}", field="subjective")
        self.record(event)

    def revise(self, changes: dict[str, Any], *, revised_by: int | None) -> None:
        """Change sections of a draft; record only those that differ."""
        self._require_draft()
        unknown = sorted(set(changes) - set(SECTIONS))
        if unknown:
            raise InvalidInput(f"{unknown[0]} is not a section of the note", field=unknown[0])
        if any(value is None for value in changes.values()):
            field = next(name for name, value in changes.items() if value is None)
            raise InvalidInput(f"{field} must be text (empty to clear it)", field=field)
        event = validate_event(NoteRevised, {"patient_id": self.s.patient_id, **changes})
        differing = {s: getattr(event, s) for s in SECTIONS
                     if s in event.model_fields_set and getattr(event, s) != getattr(self.s, s)}
        if not differing:
            return
        if not any(differing.get(s, getattr(self.s, s)) for s in SECTIONS):
            raise InvalidInput("a note keeps at least one section written", field=next(iter(differing)))
        self.record(NoteRevised.model_validate(without_none(
            {"patient_id": self.s.patient_id, **differing, "revised_by": revised_by}
        )))

    def sign(self, *, signed_by: int | None, signed_at: datetime) -> None:
        """Sign the draft; once."""
        if self.s.status is not NoteStatus.DRAFT:
            raise RuleViolated("the note is already signed", code="already_signed")
        self.record(NoteSigned.model_validate(without_none(
            {"patient_id": self.s.patient_id, "signed_by": signed_by, "signed_at": signed_at}
        )))

    def amend(
        self, *, amendment: str | None, reason: str | None, amended_by: int | None,
        amended_at: datetime,
    ) -> None:
        """Add an amendment, with its reason, to a signed note."""
        if self.s.status is NoteStatus.DRAFT:
            raise RuleViolated(
                "a draft is revised, not amended; amendments come after signing", code="not_signed"
            )
        if reason is None or not reason.strip():
            raise InvalidInput("reason is required to amend a signed note", field="reason")
        event = validate_event(NoteAmended, without_none({
            "patient_id": self.s.patient_id, "amendment": amendment, "reason": reason,
            "amended_by": amended_by, "amended_at": amended_at,
        }))
        self.record(event)

    def _require_draft(self) -> None:
        if self.s.status is not NoteStatus.DRAFT:
            raise RuleViolated(
                "a signed note is never edited; amend it with a reason instead", code="note_signed"
            )

    def when(self, event: DomainEvent) -> None:
        match event:
            case NoteDrafted():
                self.s = NoteState(**event.model_dump(), status=NoteStatus.DRAFT)
            case NoteRevised():
                for section in SECTIONS:
                    if section in event.model_fields_set:
                        setattr(self.s, section, getattr(event, section))
                self.s.revisions += 1
            case NoteSigned():
                self.s.status = NoteStatus.SIGNED
                self.s.signed_by = event.signed_by
                self.s.signed_at = event.signed_at
            case NoteAmended():
                self.s.status = NoteStatus.AMENDED
                self.s.amendments.append(Amendment(**event.model_dump(exclude={"patient_id"})))
