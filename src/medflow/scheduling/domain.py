"""The Appointment aggregate and its events. Plain Python and pydantic: no Django here.

State machine::

    scheduled --check_in--> checked_in --complete--> completed
    scheduled --reschedule--> scheduled
    scheduled --cancel--> cancelled
    scheduled --no_show--> no_show

cancelled, completed and no_show are final. Times are stored in UTC.
"""

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID

from pydantic import AwareDatetime, StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from medflow.errors import InvalidInput, RuleViolated
from medflow.eventstore.aggregate import Aggregate
from medflow.eventstore.events import DomainEvent, validate_event

# How far in the past an appointment may still be booked (the clerk typing it in as it starts).
GRACE = timedelta(minutes=5)
MIN_MINUTES = 5
MAX_MINUTES = 720
MAX_DAYS_AHEAD = 730
MAX_DURATION = timedelta(minutes=MAX_MINUTES)

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class AppointmentKind(StrEnum):
    """What the appointment is for."""

    CONSULTATION = "consultation"
    FOLLOW_UP = "follow_up"
    CHECK_UP = "check_up"
    PROCEDURE = "procedure"
    VACCINATION = "vaccination"
    OTHER = "other"


class Status(StrEnum):
    """Where an appointment stands in its life."""

    SCHEDULED = "scheduled"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


class CancelledBy(StrEnum):
    """Which party called the appointment off (who typed it in is in the metadata)."""

    PATIENT = "patient"
    CLINIC = "clinic"
    SYSTEM = "system"


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


class AppointmentScheduled(DomainEvent):
    """A patient was booked with a provider (a doctor or nurse of the clinic) for a time slot."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    timeline_kind: ClassVar[str] = "appointment"

    patient_id: UUID
    clinic_id: UUID
    provider_id: int
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    kind: AppointmentKind = AppointmentKind.CONSULTATION
    reason: Reason | None = None

    def summary(self) -> str:
        minutes = int((self.ends_at - self.starts_at).total_seconds() // 60)
        kind = self.kind.value.replace("_", " ")
        return f"Appointment ({kind}) booked for {_when(self.starts_at)}, {minutes} min"


class AppointmentRescheduled(DomainEvent):
    """The appointment moved to another slot with the same provider."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    timeline_kind: ClassVar[str] = "appointment"

    patient_id: UUID
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Reason | None = None

    def summary(self) -> str:
        return f"Appointment moved to {_when(self.starts_at)}"


class AppointmentCancelled(DomainEvent):
    """The appointment was called off; its slot is free again."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    timeline_kind: ClassVar[str] = "appointment"

    patient_id: UUID
    reason: Reason | None = None
    by: CancelledBy = CancelledBy.CLINIC

    def summary(self) -> str:
        return f"Appointment cancelled by {self.by.value}" + (f": {self.reason}" if self.reason else "")


class AppointmentCheckedIn(DomainEvent):
    """The patient arrived for the appointment."""

    timeline_kind: ClassVar[str] = "appointment"
    effective_time_field: ClassVar[str | None] = "at"

    patient_id: UUID
    at: AwareDatetime

    def summary(self) -> str:
        return f"Checked in for appointment at {_when(self.at)}"


class AppointmentCompleted(DomainEvent):
    """The visit is over."""

    timeline_kind: ClassVar[str] = "appointment"
    effective_time_field: ClassVar[str | None] = "at"

    patient_id: UUID
    at: AwareDatetime

    def summary(self) -> str:
        return "Appointment completed"


class AppointmentNoShow(DomainEvent):
    """The patient did not come."""

    timeline_kind: ClassVar[str] = "appointment"

    patient_id: UUID

    def summary(self) -> str:
        return "Did not attend appointment"


class Appointment(Aggregate):
    """One booking of a patient with a provider."""

    aggregate_type = "Appointment"
    state_version = 1

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.patient_id: UUID | None = None
        self.clinic_id: UUID | None = None
        self.provider_id: int | None = None
        self.starts_at: datetime | None = None
        self.ends_at: datetime | None = None
        self.kind = AppointmentKind.CONSULTATION
        self.reason: str | None = None
        self.status: Status | None = None
        self.checked_in_at: datetime | None = None
        self.completed_at: datetime | None = None
        self.cancel_reason: str | None = None
        self.cancelled_by: CancelledBy | None = None

    # Commands -----------------------------------------------------------------------------

    def schedule(
        self, *, now: datetime, patient_id: UUID, clinic_id: UUID, provider_id: int,
        starts_at: Any, ends_at: Any = None, duration_minutes: int | None = None,
        kind: Any = None, reason: str | None = None,
    ) -> None:
        """Book the slot; it must end after it starts, last 5 to 720 minutes and not be past."""
        if self.exists:
            raise RuleViolated("appointment already scheduled", code="already_scheduled")
        start, end = _slot(starts_at, ends_at, duration_minutes)
        data: dict[str, Any] = {
            "patient_id": patient_id, "clinic_id": clinic_id, "provider_id": provider_id,
            "starts_at": start, "ends_at": end,
        }
        if kind is not None:
            data["kind"] = kind
        if reason is not None:
            data["reason"] = reason
        event = validate_event(AppointmentScheduled, data)
        _check_slot(event.starts_at, event.ends_at, now)
        self.record(event)

    def reschedule(
        self, *, now: datetime, starts_at: Any, ends_at: Any = None,
        duration_minutes: int | None = None, reason: str | None = None,
    ) -> None:
        """Move to another slot; without an end or duration, keep the current length.

        Moving to the very same slot records nothing.
        """
        self._require(Status.SCHEDULED, "reschedule")
        if ends_at is None and duration_minutes is None:
            duration_minutes = self.duration_minutes
        start, end = _slot(starts_at, ends_at, duration_minutes)
        data: dict[str, Any] = {"patient_id": self.patient_id, "starts_at": start, "ends_at": end}
        if reason is not None:
            data["reason"] = reason
        event = validate_event(AppointmentRescheduled, data)
        _check_slot(event.starts_at, event.ends_at, now)
        if (event.starts_at, event.ends_at) != (self.starts_at, self.ends_at):
            self.record(event)

    def cancel(self, *, reason: str | None = None, by: Any = CancelledBy.CLINIC) -> None:
        """Call the appointment off, freeing its slot."""
        self._require(Status.SCHEDULED, "cancel")
        data: dict[str, Any] = {"patient_id": self.patient_id, "by": by}
        if reason is not None:
            data["reason"] = reason
        self.record(validate_event(AppointmentCancelled, data))

    def check_in(self, *, now: datetime, at: Any = None) -> None:
        """Mark the patient as arrived, now or at an earlier time."""
        self._require(Status.SCHEDULED, "check in")
        event = AppointmentCheckedIn(patient_id=self.patient_id, at=_aware(at or now, "at"))
        _not_future(event.at, now, "at")
        self.record(event)

    def complete(self, *, now: datetime, at: Any = None) -> None:
        """Close the visit of a checked-in patient."""
        self._require(Status.CHECKED_IN, "complete")
        event = AppointmentCompleted(patient_id=self.patient_id, at=_aware(at or now, "at"))
        _not_future(event.at, now, "at")
        if event.at < self.checked_in_at:
            raise InvalidInput("at must not be before the check-in time", field="at")
        self.record(event)

    def no_show(self, *, now: datetime) -> None:
        """Record that the patient did not come; only once the slot has begun."""
        self._require(Status.SCHEDULED, "mark as no-show")
        if now < self.starts_at:
            raise RuleViolated(
                "an appointment can be marked as no-show only once it has started",
                code="not_started", field="starts_at",
            )
        self.record(AppointmentNoShow(patient_id=self.patient_id))

    def _require(self, status: Status, action: str) -> None:
        if self.status != status:
            current = self.status.value.replace("_", " ") if self.status else "not scheduled"
            raise RuleViolated(
                f"cannot {action} an appointment that is {current}",
                code="invalid_transition", field="status",
            )

    # State --------------------------------------------------------------------------------

    @property
    def duration_minutes(self) -> int:
        """Return the slot's length in minutes."""
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

    def when(self, event: DomainEvent) -> None:
        match event:
            case AppointmentScheduled():
                self.patient_id = event.patient_id
                self.clinic_id = event.clinic_id
                self.provider_id = event.provider_id
                self.starts_at, self.ends_at = event.starts_at, event.ends_at
                self.kind = event.kind
                self.reason = event.reason
                self.status = Status.SCHEDULED
            case AppointmentRescheduled():
                self.starts_at, self.ends_at = event.starts_at, event.ends_at
            case AppointmentCancelled():
                self.status = Status.CANCELLED
                self.cancel_reason = event.reason
                self.cancelled_by = event.by
            case AppointmentCheckedIn():
                self.status = Status.CHECKED_IN
                self.checked_in_at = event.at
            case AppointmentCompleted():
                self.status = Status.COMPLETED
                self.completed_at = event.at
            case AppointmentNoShow():
                self.status = Status.NO_SHOW

    def state(self) -> dict[str, Any]:
        """Return the appointment as JSON-ready data, as the API shows it."""
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": str(self.id),
            "patient_id": str(self.patient_id) if self.patient_id else None,
            "clinic_id": str(self.clinic_id) if self.clinic_id else None,
            "provider_id": self.provider_id,
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at),
            "kind": self.kind.value,
            "reason": self.reason,
            "status": self.status.value if self.status else None,
            "checked_in_at": iso(self.checked_in_at),
            "completed_at": iso(self.completed_at),
            "cancel_reason": self.cancel_reason,
            "cancelled_by": self.cancelled_by.value if self.cancelled_by else None,
        }

    def snapshot_state(self) -> dict[str, Any]:
        return self.state()

    @classmethod
    def from_snapshot(cls, aggregate_id: UUID, version: int, state: dict[str, Any]) -> Self:
        def uuid(value: str | None) -> UUID | None:
            return UUID(value) if value else None

        def time(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        appointment = cls(aggregate_id)
        appointment.patient_id = uuid(state["patient_id"])
        appointment.clinic_id = uuid(state["clinic_id"])
        appointment.provider_id = state["provider_id"]
        appointment.starts_at = time(state["starts_at"])
        appointment.ends_at = time(state["ends_at"])
        appointment.kind = AppointmentKind(state["kind"])
        appointment.reason = state["reason"]
        appointment.status = Status(state["status"]) if state["status"] else None
        appointment.checked_in_at = time(state["checked_in_at"])
        appointment.completed_at = time(state["completed_at"])
        appointment.cancel_reason = state["cancel_reason"]
        appointment.cancelled_by = CancelledBy(state["cancelled_by"]) if state["cancelled_by"] else None
        appointment.version = version
        return appointment


_AWARE = TypeAdapter(AwareDatetime)


def _aware(value: Any, field: str) -> datetime:
    """Read a date-time with a time zone and return it in UTC."""
    try:
        return _AWARE.validate_python(value).astimezone(UTC)
    except PydanticValidationError as exc:
        raise InvalidInput(f"{field}: {exc.errors()[0]['msg']}", field=field) from exc


def _slot(starts_at: Any, ends_at: Any, duration_minutes: Any) -> tuple[datetime, datetime]:
    """Turn a start plus an end or a duration into a start and an end, in UTC."""
    if starts_at is None:
        raise InvalidInput("starts_at is required", field="starts_at")
    start = _aware(starts_at, "starts_at")
    if ends_at is not None and duration_minutes is not None:
        raise InvalidInput("give ends_at or duration_minutes, not both", field="duration_minutes")
    if ends_at is not None:
        return start, _aware(ends_at, "ends_at")
    if duration_minutes is None:
        raise InvalidInput("ends_at or duration_minutes is required", field="ends_at")
    if isinstance(duration_minutes, bool) or not isinstance(duration_minutes, int):
        raise InvalidInput("duration_minutes must be a whole number of minutes",
                           field="duration_minutes")
    if not MIN_MINUTES <= duration_minutes <= MAX_MINUTES:
        raise InvalidInput(
            f"duration_minutes must be between {MIN_MINUTES} and {MAX_MINUTES} minutes",
            field="duration_minutes",
        )
    return start, start + timedelta(minutes=duration_minutes)


def _check_slot(starts_at: datetime, ends_at: datetime, now: datetime) -> None:
    if ends_at <= starts_at:
        raise InvalidInput("ends_at must be after starts_at", field="ends_at")
    minutes = (ends_at - starts_at).total_seconds() / 60
    if not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise InvalidInput(
            f"the appointment must last between {MIN_MINUTES} and {MAX_MINUTES} minutes"
            f" (ends_at is {minutes:g} minutes after starts_at)",
            field="ends_at",
        )
    if starts_at < now - GRACE:
        raise InvalidInput("starts_at must not be in the past", field="starts_at")
    if starts_at > now + timedelta(days=MAX_DAYS_AHEAD):
        raise InvalidInput(f"starts_at must be within {MAX_DAYS_AHEAD} days from now",
                           field="starts_at")


def _not_future(value: datetime, now: datetime, field: str) -> None:
    if value > now + GRACE:
        raise InvalidInput(f"{field} must not be in the future", field=field)


__all__ = [
    "Appointment", "AppointmentCancelled", "AppointmentCheckedIn", "AppointmentCompleted",
    "AppointmentKind", "AppointmentNoShow", "AppointmentRescheduled", "AppointmentScheduled",
    "CancelledBy", "Status",
]
