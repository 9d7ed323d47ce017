"""The Patient aggregate and its events. Plain Python and pydantic: no Django here."""

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from medflow.errors import InvalidInput, RuleViolated
from medflow.eventstore.aggregate import Aggregate
from medflow.eventstore.events import REDACTED, DomainEvent, registry, validate_event

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Mrn = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40, pattern=r"^[\w.-]+$")
]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=40, pattern=r"^\+?[0-9 ().-]{3,}$")
]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.\w+$")
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class Sex(StrEnum):
    """Administrative sex, as FHIR's AdministrativeGender."""

    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class Address(BaseModel):
    """A postal address; `lines` are the street lines, as FHIR's Address.line."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lines: Annotated[list[ShortText], Field(max_length=4)] = []
    city: ShortText = ""
    state: ShortText = ""
    postal_code: ShortText = ""
    country: ShortText = ""


class PatientRegistered(DomainEvent):
    """A patient was registered at a clinic.

    Schema 2: the address's single `line` became a list of `lines`.
    """

    schema_version: ClassVar[int] = 2
    subject_is_stream: ClassVar[bool] = True
    personal_fields: ClassVar[frozenset[str]] = frozenset(
        {"mrn", "given_names", "family_name", "birth_date", "phone", "email", "address"}
    )

    clinic_id: UUID
    mrn: Mrn
    given_names: Name
    family_name: Name
    birth_date: date
    sex: Sex = Sex.UNKNOWN
    phone: Phone | None = None
    email: Email | None = None
    address: Address | None = None


class PatientUpdated(DomainEvent):
    """Some of a patient's demographics, contact details or address changed.

    Carries only the changed fields: a field absent from the payload did not change; a field
    present as null was cleared. Schema 2: as PatientRegistered.
    """

    schema_version: ClassVar[int] = 2
    subject_is_stream: ClassVar[bool] = True
    personal_fields: ClassVar[frozenset[str]] = PatientRegistered.personal_fields

    mrn: Mrn = None  # type: ignore[assignment]
    given_names: Name = None  # type: ignore[assignment]
    family_name: Name = None  # type: ignore[assignment]
    birth_date: date = None  # type: ignore[assignment]
    sex: Sex = None  # type: ignore[assignment]
    phone: Phone | None = None
    email: Email | None = None
    address: Address | None = None


class PatientArchived(DomainEvent):
    """A patient's record was closed; it stays readable but takes no more changes."""

    subject_is_stream: ClassVar[bool] = True
    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    reason: ShortText | None = None


class PatientForgotten(DomainEvent):
    """The patient's personal data was erased (GDPR Art. 17): their data key is destroyed, so
    every earlier event's personal fields read back as redacted. Carries no personal data."""

    subject_is_stream: ClassVar[bool] = True
    retention_overridden: bool = False


EDITABLE_FIELDS = tuple(PatientUpdated.model_fields)


class Patient(Aggregate):
    """A patient of one clinic."""

    aggregate_type = "Patient"
    # 2: addresses carry `lines` (snapshots of state 1 are discarded, never misread).
    state_version = 2

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.clinic_id: UUID | None = None
        self.demographics: dict[str, Any] = {}
        self.archived = False
        self.forgotten = False

    # Commands -----------------------------------------------------------------------------

    def register(self, *, clinic_id: UUID, today: date, **fields: Any) -> None:
        """Register a new patient; name and birth date are required, birth date not future."""
        if self.exists:
            raise RuleViolated("patient already registered", code="already_registered")
        event = validate_event(PatientRegistered, {"clinic_id": clinic_id, **fields})
        _check_birth_date(event.birth_date, today)
        self.record(event)

    def update(self, changes: dict[str, Any], *, today: date) -> None:
        """Change demographics, contact or address; record only the fields that differ."""
        self._require_active()
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            field = sorted(unknown)[0]
            raise InvalidInput(f"{field} cannot be changed", field=field)
        event = validate_event(PatientUpdated, changes)
        if "birth_date" in event.model_fields_set:
            _check_birth_date(event.birth_date, today)
        new_values = event.model_dump(mode="json", include=event.model_fields_set)
        differing = {k: v for k, v in new_values.items() if self.demographics.get(k) != v}
        if differing:
            self.record(PatientUpdated.model_validate(differing))

    def archive(self, reason: str | None = None) -> None:
        """Close the record."""
        self._require_active()
        self.record(PatientArchived(reason=reason) if reason else PatientArchived())

    def forget(self, *, retention_overridden: bool = False) -> None:
        """Erase the patient's personal data (the service destroys the key in the same step)."""
        if self.forgotten:
            raise RuleViolated("patient is already forgotten", code="patient_forgotten")
        self.record(PatientForgotten(retention_overridden=retention_overridden))

    def _require_active(self) -> None:
        if self.forgotten:
            raise RuleViolated("patient was forgotten and takes no more changes",
                               code="patient_forgotten")
        if self.archived:
            raise RuleViolated("patient is archived and takes no more changes",
                               code="patient_archived")

    # State --------------------------------------------------------------------------------

    def when(self, event: DomainEvent) -> None:
        match event:
            case PatientRegistered():
                self.clinic_id = event.clinic_id
                data = event.model_dump(mode="json", warnings=False)
                data.pop("clinic_id")
                self.demographics = data
            case PatientUpdated():
                self.demographics.update(event.payload())
            case PatientArchived():
                self.archived = True
            case PatientForgotten():
                self.forgotten = True
                self.demographics = dict.fromkeys(self.demographics, REDACTED)

    def state(self) -> dict[str, Any]:
        """Return the patient's current data as the API shows it."""
        return {
            "id": str(self.id),
            "clinic_id": str(self.clinic_id) if self.clinic_id else None,
            **self.demographics,
            "archived": self.archived,
            "forgotten": self.forgotten,
        }

    def snapshot_state(self) -> dict[str, Any]:
        return self.state()

    @classmethod
    def from_snapshot(cls, aggregate_id: UUID, version: int, state: dict[str, Any]) -> Self:
        patient = cls(aggregate_id)
        data = dict(state)
        data.pop("id", None)
        clinic = data.pop("clinic_id", None)
        patient.clinic_id = UUID(clinic) if clinic else None
        patient.archived = data.pop("archived", False)
        patient.forgotten = data.pop("forgotten", False)
        patient.demographics = data
        patient.version = version
        return patient


@registry.upcaster("PatientRegistered", 1)
@registry.upcaster("PatientUpdated", 1)
def address_line_to_lines(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: turn the address's single `line` into the list `lines`."""
    address = data.get("address")
    if isinstance(address, dict) and "line" in address:
        line = address.pop("line")
        data["address"] = {**address, "lines": [line] if line else []}
    return data


def _check_birth_date(birth_date: date, today: date) -> None:
    if birth_date > today:
        raise InvalidInput("birth_date must not be in the future", field="birth_date")


__all__ = [
    "Address", "Patient", "PatientArchived", "PatientForgotten", "PatientRegistered",
    "PatientUpdated", "Sex",
]
