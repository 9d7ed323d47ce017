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
        # Handlers by the module that declared them: a projection is a module's handlers.
        self._by_module: dict[str, list[tuple[frozenset[str] | None, Handler]]] = defaultdict(list)

    def on(self, *event_classes: type[DomainEvent]) -> Callable[[Handler], Handler]:
        """Register the decorated function for these event classes."""

        def decorate(func: Handler) -> Handler:
            for cls in event_classes:
                self._handlers[cls.event_type].append(func)
            types = frozenset(cls.event_type for cls in event_classes)
            self._by_module[func.__module__].append((types, func))
            return func

        return decorate

    def on_every(self, func: Handler) -> Handler:
        """Register the decorated function for every event (after the type-specific handlers)."""
        self._every.append(func)
        self._by_module[func.__module__].append((None, func))
        return func

    def module_handler(self, module: str) -> Handler:
        """Return one handler that runs, in registration order, what `module` registered."""
        entries = list(self._by_module.get(module, ()))

        def handle(recorded: RecordedEvent) -> None:
            for types, func in entries:
                if types is None or recorded.event_type in types:
                    func(recorded)

        return handle

    def modules(self) -> list[str]:
        """Return the modules that registered handlers."""
        return list(self._by_module)

    def dispatch(self, events: Iterable[RecordedEvent]) -> None:
        """Run every handler registered for each event, in order."""
        for recorded in events:
            for handler in self._handlers.get(recorded.event_type, ()):
                handler(recorded)
            for handler in self._every:
                handler(recorded)


inline = InlineHandlers()
