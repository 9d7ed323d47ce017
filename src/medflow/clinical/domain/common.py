"""Types and checks that the clinical aggregates share. Plain Python and pydantic: no Django."""

from datetime import date, datetime, timedelta
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, StringConstraints

from medflow.errors import InvalidInput
from medflow.eventstore.aggregate import Aggregate

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# Why something was done or asked for: a line or two.
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
# One SOAP section; empty means "nothing written in this section".
SectionText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20000)]

# Devices and client machines run a little fast; a time this far ahead of ours is still "now".
CLOCK_SKEW = timedelta(minutes=5)


def not_in_future(value: datetime, now: datetime, field: str) -> None:
    """Refuse a clinical time later than now (give or take clock skew)."""
    if value > now + CLOCK_SKEW:
        raise InvalidInput(f"{field} must not be in the future", field=field)


def not_after_today(value: date | None, today: date, field: str) -> None:
    """Refuse a clinical date later than today."""
    if value is not None and value > today:
        raise InvalidInput(f"{field} must not be in the future", field=field)


def without_none(fields: dict[str, Any]) -> dict[str, Any]:
    """Drop the fields a command left out, so that events carry only what was said."""
    return {key: value for key, value in fields.items() if value is not None}


class State(BaseModel):
    """An aggregate's folded state: typed in memory, JSON in snapshots and read models."""

    model_config = ConfigDict(extra="forbid")

    def dump(self) -> dict[str, Any]:
        """Return the state as JSON-ready data."""
        return self.model_dump(mode="json")

    @classmethod
    def load(cls, data: dict[str, Any]) -> Self:
        """Rebuild the state from `dump()` output."""
        return cls.model_validate(data)


class ClinicalAggregate(Aggregate):
    """An aggregate of one patient whose state is a `State` model (`state_class`), kept in `s`."""

    state_class: ClassVar[type[State]] = State

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.s = self.state_class()

    @property
    def patient_id(self) -> UUID | None:
        """Return the patient this aggregate belongs to (None before it is created)."""
        return self.s.patient_id

    def state(self) -> dict[str, Any]:
        """Return the state as the API and the read models show it."""
        return {"id": str(self.id), **self.s.dump()}

    def snapshot_state(self) -> dict[str, Any]:
        return self.s.dump()

    @classmethod
    def from_snapshot(cls, aggregate_id: UUID, version: int, state: dict[str, Any]) -> Self:
        aggregate = cls(aggregate_id)
        data = dict(state)
        data.pop("id", None)
        aggregate.s = cls.state_class.load(data)
        aggregate.version = version
        return aggregate
