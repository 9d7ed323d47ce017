"""Inline event handlers: read-model updaters that run inside the append's transaction."""

from collections import defaultdict
from collections.abc import Callable, Iterable

from medflow.eventstore.events import DomainEvent
from medflow.eventstore.store import RecordedEvent

Handler = Callable[[RecordedEvent], None]


class InlineHandlers:
    """Route each recorded event to the handlers registered for its class."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._every: list[Handler] = []

    def on(self, *event_classes: type[DomainEvent]) -> Callable[[Handler], Handler]:
        """Register the decorated function for these event classes."""

        def decorate(func: Handler) -> Handler:
            for cls in event_classes:
                self._handlers[cls.event_type].append(func)
            return func

        return decorate

    def on_every(self, func: Handler) -> Handler:
        """Register the decorated function for every event (after the type-specific handlers)."""
        self._every.append(func)
        return func

    def dispatch(self, events: Iterable[RecordedEvent]) -> None:
        """Run every handler registered for each event, in order."""
        for recorded in events:
            for handler in self._handlers.get(recorded.event_type, ()):
                handler(recorded)
            for handler in self._every:
                handler(recorded)


inline = InlineHandlers()
