"""Inline event handlers: read-model updaters that run inside the append's transaction.

A module's handlers apply one event at a time; that is the reference meaning of its projection.
A projection module may also register a batch function (`@inline.batched(...)`) that folds a list
of events in memory and writes each touched row once. `dispatch` uses it when given several
events, and rebuilds use it page by page; modules without one (process managers, dual-write)
still see every event one by one, in log order. A handler that acts on only some events of its
classes (a process manager reacting to critical results) says which with `when=`, so that a batch
is cut only where it acts.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from medflow.eventstore.events import DomainEvent
from medflow.eventstore.store import RecordedEvent

Handler = Callable[[RecordedEvent], None]
BatchHandler = Callable[[Sequence[RecordedEvent]], None]
Predicate = Callable[[RecordedEvent], bool]


class InlineHandlers:
    """Route each recorded event to the handlers registered for its class."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._every: list[Handler] = []
        # Handlers by the module that declared them: a projection is a module's handlers.
        self._by_module: dict[str, list[tuple[frozenset[str] | None, Handler]]] = defaultdict(list)
        # Batch functions by module, with the event types they leave to the per-event handlers.
        self._batch: dict[str, tuple[BatchHandler, frozenset[str]]] = {}
        self._plan: _Plan | None = None

    def on(
        self, *event_classes: type[DomainEvent], when: Predicate | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated function for these event classes.

        With `when`, the function runs only for the events `when` accepts. `when` must be a pure
        test of the event itself (its payload and metadata, no query): `dispatch` asks it to
        learn where a process manager acts, and cuts a batch there only.
        """

        def decorate(func: Handler) -> Handler:
            handler = func if when is None else _Conditional(func, when)
            for cls in event_classes:
                self._handlers[cls.event_type].append(handler)
            types = frozenset(cls.event_type for cls in event_classes)
            self._by_module[func.__module__].append((types, handler))
            self._plan = None
            return func

        return decorate

    def on_every(self, func: Handler) -> Handler:
        """Register the decorated function for every event (after the type-specific handlers)."""
        self._every.append(func)
        self._by_module[func.__module__].append((None, func))
        self._plan = None
        return func

    @staticmethod
    def pending_safe(
        func: Handler | None = None, *, unless: Callable[[], bool] | None = None,
    ) -> Any:
        """Mark the decorated handler as one a command may run before its append's statement.

        Such a handler gets the event's position and time as `store.Pending` values, which it
        may only pass on unread to `projections.rowsql` writes (whose statements then take them
        from the server), and it sends no statement of its own: it neither reads the database
        nor writes but through those row writes. `unless` names a setting-like test under which
        the handler is not safe (dual-write, when on).
        """

        def mark(func: Handler) -> Handler:
            func.medflow_pending_safe = unless or (lambda: False)  # type: ignore[attr-defined]
            return func

        return mark if func is None else mark(func)

    def takes_pending(self, event_type: str) -> bool:
        """Tell whether every handler of this event type is `pending_safe` (right now)."""
        for handler in (*self._handlers.get(event_type, ()), *self._every):
            unsafe = getattr(getattr(handler, "func", handler), "medflow_pending_safe", None)
            if unsafe is None or isinstance(handler, _Conditional) or unsafe():
                return False
        return True

    def batched(self, *serial: type[DomainEvent]) -> Callable[[BatchHandler], BatchHandler]:
        """Register the decorated function as its module's batch path.

        It gets lists of the events the module's per-event handlers take, in log order, and must
        leave the module's tables as those handlers would. It may read and write only its own
        module's tables. Events of the `serial` classes (rare ones such as a patient being
        forgotten) never reach it: the per-event handlers apply them between two batches.
        """

        def decorate(func: BatchHandler) -> BatchHandler:
            self._batch[func.__module__] = (func, frozenset(cls.event_type for cls in serial))
            self._plan = None
            return func

        return decorate

    def module_handler(self, module: str) -> Handler:
        """Return one handler that runs, in registration order, what `module` registered."""
        entries = list(self._by_module.get(module, ()))

        def handle(recorded: RecordedEvent) -> None:
            for types, func in entries:
                if types is None or recorded.event_type in types:
                    func(recorded)

        return handle

    def module_event_types(self, module: str) -> frozenset[str] | None:
        """Return the event types `module` handles, or None when it handles every event."""
        types: set[str] = set()
        for entry_types, _ in self._by_module.get(module, ()):
            if entry_types is None:
                return None
            types |= entry_types
        return frozenset(types)

    def module_batch_handler(self, module: str) -> BatchHandler:
        """Return one function that applies a list of events as `module_handler` would apply
        each in turn: through the module's batch function when it has one."""
        each = self.module_handler(module)
        types = self.module_event_types(module)
        if module not in self._batch:

            def one_by_one(events: Sequence[RecordedEvent]) -> None:
                for recorded in events:
                    if types is None or recorded.event_type in types:
                        each(recorded)

            return one_by_one
        func, serial = self._batch[module]

        def apply(events: Sequence[RecordedEvent]) -> None:
            run: list[RecordedEvent] = []
            for recorded in events:
                if types is not None and recorded.event_type not in types:
                    continue
                if recorded.event_type in serial:
                    if run:
                        func(run)
                        run = []
                    each(recorded)
                else:
                    run.append(recorded)
            if run:
                func(run)

        return apply

    def modules(self) -> list[str]:
        """Return the modules that registered handlers."""
        return list(self._by_module)

    def dispatch(self, events: Iterable[RecordedEvent]) -> None:
        """Run every handler registered for each event, in order.

        Several events go through the batch path: the log is cut after each event that a
        per-event handler of its type (a process manager) acts on; each piece is applied by the
        batch functions, then the remaining handlers run event by event. So a process manager
        sees the read models exactly as one-by-one dispatch would show them; a catch-all handler
        without a batch path (dual-write) sees them as of the end of its piece. A handler
        registered with `when` acts only on the events `when` accepts, and does nothing at all on
        the others (it is not called), so only those cut: a page of lab results none of which is
        critical is projected in one piece.
        """
        events = list(events)
        if len(events) < 2 or not self._batch:
            for recorded in events:
                self._dispatch_one(recorded)
            return
        plan = self._current_plan()
        start = 0
        for index, recorded in enumerate(events, start=1):
            tests = plan.cut_at.get(recorded.event_type)
            if tests is not None and (None in tests or any(test(recorded) for test in tests)):
                self._dispatch_piece(plan, events[start:index])
                start = index
        if start < len(events):
            self._dispatch_piece(plan, events[start:])

    def _dispatch_one(self, recorded: RecordedEvent) -> None:
        for handler in self._handlers.get(recorded.event_type, ()):
            handler(recorded)
        for handler in self._every:
            handler(recorded)

    def _dispatch_piece(self, plan: "_Plan", events: list[RecordedEvent]) -> None:
        for apply in plan.batches:
            apply(events)
        for recorded in events:
            for handler in plan.handlers.get(recorded.event_type, ()):
                handler(recorded)
            for handler in plan.every:
                handler(recorded)

    def _current_plan(self) -> "_Plan":
        if self._plan is None:
            batched = set(self._batch)
            self._plan = _Plan(
                batches=[self.module_batch_handler(m) for m in self._by_module if m in batched],
                handlers={
                    t: [h for h in hs if h.__module__ not in batched]
                    for t, hs in self._handlers.items()
                },
                every=[h for h in self._every if h.__module__ not in batched],
            )
            self._plan.cut_at = {
                t: [h.when if isinstance(h, _Conditional) else None for h in hs]
                for t, hs in self._plan.handlers.items() if hs
            }
        return self._plan


class _Plan:
    """How a list of events is dispatched: batch functions, then the per-event rest."""

    def __init__(self, batches: list[BatchHandler], handlers: dict[str, list[Handler]],
                 every: list[Handler]) -> None:
        self.batches = batches
        self.handlers = handlers
        self.every = every
        # Event type -> what makes its per-event handlers act: None for "always", else `when`.
        self.cut_at: dict[str, list[Predicate | None]] = {}


class _Conditional:
    """A handler registered with `when`: it runs only for the events `when` accepts."""

    def __init__(self, func: Handler, when: Predicate) -> None:
        self.func, self.when = func, when
        self.__module__ = func.__module__

    def __call__(self, recorded: RecordedEvent) -> None:
        if self.when(recorded):
            self.func(recorded)


inline = InlineHandlers()
