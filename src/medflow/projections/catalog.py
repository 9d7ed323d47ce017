"""Find every projection: the inline ones (a module's handlers plus its READ_MODELS) and the
catch-up ones (registered Projection objects)."""

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.db import models

from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent


@dataclass
class Projection:
    """A read model fed by events: its name, its tables (in insert order) and its handlers.

    Inline projections run inside the append's transaction; catch-up ones run in a worker from a
    checkpoint kept in the same transaction as their writes. `handle` applies one event (the
    reference meaning); `handle_batch` applies a page of events with the same result.
    """

    name: str
    tables: list[type[models.Model]]
    handle: Callable[[RecordedEvent], None]
    kind: str = "inline"
    # Tables whose primary key is an aggregate id and whose `version` must equal the stream's.
    stream_versioned: list[type[models.Model]] = field(default_factory=list)
    handle_batch: Callable[[Sequence[RecordedEvent]], None] | None = None
    # The event types it reads (None: all): a replay reads no others from the log.
    event_types: frozenset[str] | None = None
    # False when it reads only the events' headers (type, time): a replay skips decoding.
    needs_payload: bool = True
    # Called after a rebuild's swap, in its transaction: to set right what is kept beside the
    # tables (e.g. patients' name words, kept by triggers).
    after_swap: Callable[[], None] | None = None

    def apply(self, events: Sequence[RecordedEvent]) -> None:
        """Apply events in log order, through the batch path when there is one."""
        if self.handle_batch is not None:
            self.handle_batch(events)
            return
        for recorded in events:
            self.handle(recorded)


_catch_up: dict[str, Projection] = {}


def register_catch_up(projection: Projection) -> Projection:
    """Register a catch-up projection."""
    projection.kind = "catch-up"
    _catch_up[projection.name] = projection
    return projection


def inline_projections() -> list[Projection]:
    """Return the inline projections: modules that registered handlers and declare READ_MODELS.

    Modules without READ_MODELS (process managers) are not projections and are never replayed.
    """
    found = []
    for module_name in inline.modules():
        module = importlib.import_module(module_name)
        tables = getattr(module, "READ_MODELS", None)
        if tables is None:
            continue
        name = module_name.removeprefix("medflow.").removesuffix(".projections")
        found.append(Projection(
            name, list(tables), inline.module_handler(module_name),
            stream_versioned=list(getattr(module, "STREAM_VERSIONED", [])),
            handle_batch=inline.module_batch_handler(module_name),
            event_types=inline.module_event_types(module_name),
            after_swap=getattr(module, "AFTER_SWAP", None),
        ))
    return found


def all_projections() -> dict[str, Projection]:
    """Return every projection by name."""
    importlib.import_module("medflow.projections.event_counts")
    found = {p.name: p for p in inline_projections()}
    found.update(_catch_up)
    return found


def get(name: str) -> Projection:
    """Return one projection by name, or raise KeyError listing the known ones."""
    projections = all_projections()
    if name not in projections:
        raise KeyError(f"no projection {name!r}; known: {', '.join(sorted(projections))}")
    return projections[name]
