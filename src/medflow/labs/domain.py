"""The LabOrder aggregate, its results and their events. Plain Python and pydantic: no Django here.

A result belongs to the order it answers, so that "no result for a cancelled order" and "no
correction of a cancelled result" are checked inside one consistency boundary.

Abnormal flags (HL7 v2 table 0078 / FHIR interpretation codes): N normal, L/H below/above the
reference range, LL/HH at or beyond a critical limit, A abnormal (for text results). The rule:

- a numeric value at or below `critical_low` is LL, at or above `critical_high` is HH;
- otherwise below `reference_low` is L, above `reference_high` is H, inside the range is N
  (the reference limits themselves are normal);
- a flag sent with the result is kept as sent, except that it may not hide a critical value:
  a value at or beyond a critical limit sent with it must be flagged LL/HH, or it is refused;
- with no flag sent and nothing to compute it from (a text value, no limits), the flag is unset.
"""

from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict, StringConstraints

from medflow.errors import Conflict, InvalidInput, NotFound, RuleViolated
from medflow.eventstore.aggregate import Aggregate
from medflow.eventstore.events import DomainEvent, validate_event

Loinc = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{1,7}-\d$")]
Display = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
# UCUM units are printable ASCII without spaces: "mg/dL", "10*3/uL", "{INR}", "[pH]".
Unit = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[!-~]{1,40}$")]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]

# Lab instruments' clocks drift; a specimen time this far ahead of ours is still accepted.
CLOCK_SKEW = timedelta(minutes=5)


class Priority(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    STAT = "stat"


class AbnormalFlag(StrEnum):
    NORMAL = "N"
    LOW = "L"
    HIGH = "H"
    CRITICAL_LOW = "LL"
    CRITICAL_HIGH = "HH"
    ABNORMAL = "A"


CRITICAL_FLAGS = frozenset({AbnormalFlag.CRITICAL_LOW, AbnormalFlag.CRITICAL_HIGH})


class ResultStatus(StrEnum):
    FINAL = "final"
    CORRECTED = "corrected"
    CANCELLED = "cancelled"


class LabTest(BaseModel):
    """One ordered test: its LOINC code and name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    loinc_code: Loinc
    display: Display


class LabOrderPlaced(DomainEvent):
    """A doctor ordered lab tests for a patient."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    timeline_kind: ClassVar[str] = "lab"

    patient_id: UUID
    clinic_id: UUID
    ordering_provider_id: int
    tests: Annotated[list[LabTest], Field(min_length=1, max_length=50)]
    priority: Priority = Priority.ROUTINE
    reason: ShortText | None = None
    encounter_id: UUID | None = None

    def summary(self) -> str:
        names = ", ".join(test.display for test in self.tests)
        return f"Lab order ({self.priority.value}): {names}"


class ResultValues(BaseModel):
    """The correctable part of a result: what was measured, in what unit, against which limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: Number | None = None
    value_text: ShortText | None = None
    unit: Unit | None = None
    reference_low: Number | None = None
    reference_high: Number | None = None
    critical_low: Number | None = None
    critical_high: Number | None = None
    abnormal_flag: AbnormalFlag | None = None
    effective_at: AwareDatetime


CORRECTABLE_FIELDS = tuple(ResultValues.model_fields)


class LabResultRecorded(DomainEvent):
    """A result of an ordered test came back. `effective_at` is when the specimen was taken."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"value_text"})

    timeline_kind: ClassVar[str] = "lab"
    effective_time_field: ClassVar[str | None] = "effective_at"

    patient_id: UUID
    result_id: UUID
    loinc_code: Loinc
    display: Display
    value: Number | None = None
    value_text: ShortText | None = None
    unit: Unit | None = None
    reference_low: Number | None = None
    reference_high: Number | None = None
    critical_low: Number | None = None
    critical_high: Number | None = None
    abnormal_flag: AbnormalFlag | None = None
    effective_at: AwareDatetime

    def summary(self) -> str:
        return f"{self.display} {describe(self)}"


class LabResultUpdated(DomainEvent):
    """A result was corrected. Carries the whole corrected result (the test's code and name are
    copied from it) and why it was corrected."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"value_text", "reason"})

    timeline_kind: ClassVar[str] = "lab"
    effective_time_field: ClassVar[str | None] = "effective_at"

    patient_id: UUID
    result_id: UUID
    loinc_code: Loinc
    display: Display
    value: Number | None = None
    value_text: ShortText | None = None
    unit: Unit | None = None
    reference_low: Number | None = None
    reference_high: Number | None = None
    critical_low: Number | None = None
    critical_high: Number | None = None
    abnormal_flag: AbnormalFlag | None = None
    effective_at: AwareDatetime
    reason: Reason

    def summary(self) -> str:
        return f"{self.display} corrected to {describe(self)}: {self.reason}"


class LabResultCancelled(DomainEvent):
    """A result was withdrawn (wrong patient, haemolysed specimen ...); it stays in the history."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    timeline_kind: ClassVar[str] = "lab"

    patient_id: UUID
    result_id: UUID
    loinc_code: Loinc
    display: Display
    reason: Reason

    def summary(self) -> str:
        return f"{self.display} result cancelled: {self.reason}"


class LabOrderCancelled(DomainEvent):
    """An order was withdrawn before any result stood."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"reason"})

    timeline_kind: ClassVar[str] = "lab"

    patient_id: UUID
    reason: Reason

    def summary(self) -> str:
        return f"Lab order cancelled: {self.reason}"


def describe(result: Any) -> str:
    """Return "6.8 mmol/L (HH)" or "positive (A)" for a result-shaped object."""
    text = f"{result.value:.10g}" if result.value is not None else result.value_text or ""
    if result.unit:
        text += f" {result.unit}"
    flag = result.abnormal_flag
    if flag is not None and flag != AbnormalFlag.NORMAL:
        text += f" ({AbnormalFlag(flag).value})"
    return text


def compute_flag(values: ResultValues) -> AbnormalFlag | None:
    """Return the flag the value earns against its limits (see the module docstring)."""
    value = values.value
    if value is None:
        return None
    if values.critical_low is not None and value <= values.critical_low:
        return AbnormalFlag.CRITICAL_LOW
    if values.critical_high is not None and value >= values.critical_high:
        return AbnormalFlag.CRITICAL_HIGH
    if values.reference_low is not None and value < values.reference_low:
        return AbnormalFlag.LOW
    if values.reference_high is not None and value > values.reference_high:
        return AbnormalFlag.HIGH
    if values.reference_low is not None or values.reference_high is not None:
        return AbnormalFlag.NORMAL
    return None


def _check_values(values: ResultValues, now: datetime) -> None:
    """Refuse a result without exactly one value, with limits out of order, or from the future."""
    if values.value is None and values.value_text is None:
        raise InvalidInput("value is required (a number), or value_text for a text result",
                           field="value")
    if values.value is not None and values.value_text is not None:
        raise InvalidInput("give value or value_text, not both", field="value_text")
    limits = [
        ("critical_low", values.critical_low), ("reference_low", values.reference_low),
        ("reference_high", values.reference_high), ("critical_high", values.critical_high),
    ]
    given = [(name, limit) for name, limit in limits if limit is not None]
    unit = f" {values.unit}" if values.unit else ""
    for (low_name, low), (high_name, high) in pairwise(given):
        if low > high:
            raise InvalidInput(
                f"{high_name} ({high:.10g}{unit}) must not be below {low_name} ({low:.10g}{unit})",
                field=high_name,
            )
    if values.effective_at > now + CLOCK_SKEW:
        raise InvalidInput("effective_at must not be in the future", field="effective_at")


def _resolve_flag(values: ResultValues) -> AbnormalFlag | None:
    computed = compute_flag(values)
    given = values.abnormal_flag
    if given is None:
        return computed
    if computed in CRITICAL_FLAGS and given != computed:
        limit = "critical_low" if computed == AbnormalFlag.CRITICAL_LOW else "critical_high"
        unit = f" {values.unit}" if values.unit else ""
        raise InvalidInput(
            f"abnormal_flag {given.value} hides a critical value: {values.value:.10g}{unit} is at"
            f" or beyond {limit}, so the flag must be {computed.value}",
            field="abnormal_flag",
        )
    return given


def loinc_check_digit_ok(code: str) -> bool:
    """Tell whether a LOINC code's last digit is its mod-10 check digit (as "2345-7")."""
    number, _, check = code.partition("-")
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return (10 - total % 10) % 10 == int(check)


def _check_loinc(code: str, field: str) -> None:
    if not loinc_check_digit_ok(code):
        raise InvalidInput(f"{field}: {code} is not a LOINC code (wrong check digit)", field=field)


class LabOrder(Aggregate):
    """An order of lab tests for one patient, and the results that answer it."""

    aggregate_type = "LabOrder"
    state_version = 1

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.patient_id: UUID | None = None
        self.clinic_id: UUID | None = None
        self.ordering_provider_id: int | None = None
        self.tests: list[dict[str, str]] = []
        self.priority = Priority.ROUTINE.value
        self.reason: str | None = None
        self.encounter_id: UUID | None = None
        self.cancelled = False
        # result id (str) -> {loinc_code, display, status, **ResultValues as JSON}
        self.results: dict[str, dict[str, Any]] = {}

    # Commands -----------------------------------------------------------------------------

    def place(self, *, patient_id: UUID, clinic_id: UUID, ordering_provider_id: int,
              **fields: Any) -> None:
        """Order tests: at least one, each a LOINC code once."""
        if self.exists:
            raise RuleViolated("lab order already placed", code="already_placed")
        event = validate_event(LabOrderPlaced, {
            "patient_id": patient_id, "clinic_id": clinic_id,
            "ordering_provider_id": ordering_provider_id, **fields,
        })
        seen: set[str] = set()
        for index, test in enumerate(event.tests):
            _check_loinc(test.loinc_code, f"tests.{index}.loinc_code")
            if test.loinc_code in seen:
                raise InvalidInput(f"test {test.loinc_code} is ordered twice",
                                   field=f"tests.{index}.loinc_code")
            seen.add(test.loinc_code)
        self.record(event)

    def record_result(self, *, result_id: UUID, now: datetime, **fields: Any) -> None:
        """Record a result; a panel's component codes need not be among the ordered codes."""
        if self.cancelled:
            raise RuleViolated("the lab order is cancelled and takes no results",
                               code="order_cancelled")
        if str(result_id) in self.results:
            raise Conflict(f"result {result_id} is already recorded", field="result_id",
                           code="result_exists")
        event = validate_event(LabResultRecorded, {
            **fields, "patient_id": self.patient_id, "result_id": result_id,
        })
        _check_loinc(event.loinc_code, "loinc_code")
        values = ResultValues.model_validate(event.model_dump(include=set(CORRECTABLE_FIELDS)))
        _check_values(values, now)
        flag = _resolve_flag(values)
        if flag != event.abnormal_flag:
            event = validate_event(LabResultRecorded, {**event.payload(), "abnormal_flag": flag})
        self.record(event)

    def correct_result(self, result_id: UUID, changes: dict[str, Any], *, reason: str,
                       now: datetime) -> None:
        """Correct a standing result; the flag is recomputed unless one is given."""
        current = self._standing_result(result_id)
        unknown = set(changes) - set(CORRECTABLE_FIELDS)
        if unknown:
            field = sorted(unknown)[0]
            raise InvalidInput(f"{field} cannot be corrected (cancel the result instead)",
                               field=field)
        old = {name: current.get(name) for name in CORRECTABLE_FIELDS}
        merged = {**old, **changes}
        # A new number replaces a text value and the other way round.
        if changes.get("value") is not None and "value_text" not in changes:
            merged["value_text"] = None
        if changes.get("value_text") is not None and "value" not in changes:
            merged["value"] = None
        if "abnormal_flag" not in changes:
            merged["abnormal_flag"] = None
        identity = {
            "patient_id": self.patient_id, "result_id": result_id,
            "loinc_code": current["loinc_code"], "display": current["display"], "reason": reason,
        }
        draft = validate_event(LabResultUpdated, {**identity, **merged})
        values = ResultValues.model_validate(draft.model_dump(include=set(CORRECTABLE_FIELDS)))
        _check_values(values, now)
        flag = _resolve_flag(values)
        value_same = (values.value, values.value_text) == (old["value"], old["value_text"])
        if flag is None and "abnormal_flag" not in changes and value_same:
            # Nothing to recompute from and the value stands: the flag given earlier still holds.
            flag = old["abnormal_flag"]
        corrected = {**values.model_dump(mode="json"), "abnormal_flag": flag}
        if corrected == old:
            raise RuleViolated("the correction changes nothing", code="no_change")
        self.record(validate_event(LabResultUpdated, {**identity, **corrected}))

    def cancel_result(self, result_id: UUID, *, reason: str) -> None:
        """Withdraw a standing result."""
        current = self._standing_result(result_id)
        self.record(validate_event(LabResultCancelled, {
            "patient_id": self.patient_id, "result_id": result_id,
            "loinc_code": current["loinc_code"], "display": current["display"], "reason": reason,
        }))

    def cancel(self, *, reason: str) -> None:
        """Withdraw the order; refused once it has a standing result (cancel those first)."""
        if self.cancelled:
            raise RuleViolated("the lab order is already cancelled", code="order_cancelled")
        if any(r["status"] != ResultStatus.CANCELLED for r in self.results.values()):
            raise RuleViolated("the lab order has results; cancel them first",
                               code="order_has_results")
        self.record(validate_event(LabOrderCancelled, {"patient_id": self.patient_id,
                                                       "reason": reason}))

    def _standing_result(self, result_id: UUID) -> dict[str, Any]:
        current = self.results.get(str(result_id))
        if current is None:
            raise NotFound(f"no result {result_id} on lab order {self.id}", field="result_id")
        if current["status"] == ResultStatus.CANCELLED:
            raise RuleViolated(f"result {result_id} is cancelled", code="result_cancelled")
        return current

    # State --------------------------------------------------------------------------------

    def when(self, event: DomainEvent) -> None:
        match event:
            case LabOrderPlaced():
                self.patient_id, self.clinic_id = event.patient_id, event.clinic_id
                self.ordering_provider_id = event.ordering_provider_id
                self.tests = [test.model_dump() for test in event.tests]
                self.priority = event.priority.value
                self.reason, self.encounter_id = event.reason, event.encounter_id
            case LabResultRecorded():
                self.results[str(event.result_id)] = {
                    **_result_state(event), "status": ResultStatus.FINAL.value,
                }
            case LabResultUpdated():
                self.results[str(event.result_id)] = {
                    **_result_state(event), "status": ResultStatus.CORRECTED.value,
                }
            case LabResultCancelled():
                self.results[str(event.result_id)]["status"] = ResultStatus.CANCELLED.value
            case LabOrderCancelled():
                self.cancelled = True

    def state(self) -> dict[str, Any]:
        """Return the order and its results as JSON-ready data."""
        return {
            "id": str(self.id),
            "patient_id": str(self.patient_id) if self.patient_id else None,
            "clinic_id": str(self.clinic_id) if self.clinic_id else None,
            "ordering_provider_id": self.ordering_provider_id,
            "tests": self.tests,
            "priority": self.priority,
            "reason": self.reason,
            "encounter_id": str(self.encounter_id) if self.encounter_id else None,
            "cancelled": self.cancelled,
            "results": self.results,
        }

    def snapshot_state(self) -> dict[str, Any]:
        return self.state()

    @classmethod
    def from_snapshot(cls, aggregate_id: UUID, version: int, state: dict[str, Any]) -> Self:
        order = cls(aggregate_id)
        order.patient_id = UUID(state["patient_id"]) if state["patient_id"] else None
        order.clinic_id = UUID(state["clinic_id"]) if state["clinic_id"] else None
        order.ordering_provider_id = state["ordering_provider_id"]
        order.tests = list(state["tests"])
        order.priority = state["priority"]
        order.reason = state["reason"]
        order.encounter_id = UUID(state["encounter_id"]) if state["encounter_id"] else None
        order.cancelled = state["cancelled"]
        order.results = {k: dict(v) for k, v in state["results"].items()}
        order.version = version
        return order


def _result_state(event: LabResultRecorded | LabResultUpdated) -> dict[str, Any]:
    return event.model_dump(
        mode="json", include={"loinc_code", "display", *CORRECTABLE_FIELDS}
    )


__all__ = [
    "AbnormalFlag", "LabOrder", "LabOrderCancelled", "LabOrderPlaced", "LabResultCancelled",
    "LabResultRecorded", "LabResultUpdated", "LabTest", "Priority", "ResultStatus",
]
