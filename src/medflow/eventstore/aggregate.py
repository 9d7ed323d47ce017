"""Aggregate base: command methods check invariants and record events; `when` folds them in."""

from collections.abc import Iterable
from typing import Any, ClassVar, Self
from uuid import UUID

from medflow.eventstore.events import DomainEvent


class Aggregate:
    """An event-sourced consistency boundary.

    Subclasses set `aggregate_type`, start from a blank state in `__init__`, implement
    `when(event)` to fold one event into state, and record new events with `record`.
    """

    aggregate_type: ClassVar[str] = ""
    # Bump when the state shape changes, so that old snapshots are discarded, never misread.
    state_version: ClassVar[int] = 1

    def __init__(self, aggregate_id: UUID) -> None:
        self.id = aggregate_id
        self.version = 0
        self.pending: list[DomainEvent] = []

    @classmethod
    def replay(cls, aggregate_id: UUID, events: Iterable[DomainEvent]) -> Self:
        """Rebuild an aggregate from its past events."""
        aggregate = cls(aggregate_id)
        for event in events:
            aggregate.when(event)
            aggregate.version += 1
        return aggregate

    @property
    def exists(self) -> bool:
        """Tell whether any event has been recorded for this aggregate."""
        return self.version > 0 or bool(self.pending)

    def record(self, event: DomainEvent) -> None:
        """Apply a new event to state and queue it for the store."""
        self.when(event)
        self.pending.append(event)

    def when(self, event: DomainEvent) -> None:
        """Fold one event into state."""
        raise NotImplementedError

    def snapshot_state(self) -> dict[str, Any]:
        """Return the state as JSON-ready data for a snapshot."""
        raise NotImplementedError

    @classmethod
    def from_snapshot(cls, aggregate_id: UUID, version: int, state: dict[str, Any]) -> Self:
        """Rebuild an aggregate from a snapshot."""
        raise NotImplementedError
