"""Domain events: frozen pydantic models, registered by type name, each with a schema version.

No Django here: the domain layers import this module.
"""

import re
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from medflow.errors import InvalidInput


class DomainEvent(BaseModel):
    """Base of every event. Subclasses are past-tense facts with a `schema_version`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: ClassVar[int] = 1
    event_type: ClassVar[str] = ""
    # The payload field holding when the fact happened in the world (e.g. when vitals were
    # measured), if that differs from when it was recorded.
    effective_time_field: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Called before pydantic finishes building the class, so register in
        # __pydantic_init_subclass__ instead; only name the event here.
        cls.event_type = cls.__name__

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        registry.register(cls)

    def summary(self) -> str:
        """Return a one-line human description (subclasses say more)."""
        return re.sub(r"(?<!^)(?=[A-Z])", " ", self.event_type).capitalize()

    def payload(self) -> dict[str, Any]:
        """Return the JSON-ready payload, leaving out top-level fields the command did not set
        (nested objects are kept whole, defaults included)."""
        data = self.model_dump(mode="json")
        return {key: value for key, value in data.items() if key in self.model_fields_set}


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class EventRegistry:
    """Map event type names to classes, and old schema versions to their upcasters."""

    def __init__(self) -> None:
        self._classes: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, cls: type[DomainEvent]) -> None:
        """Register an event class under its type name; a second class of that name is an error."""
        existing = self._classes.get(cls.event_type)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise RuntimeError(f"event type {cls.event_type} registered twice")
        self._classes[cls.event_type] = cls

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a pure function that turns a payload of `from_version` into the next version."""

        def decorate(func: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = func
            return func

        return decorate

    def get(self, event_type: str) -> type[DomainEvent]:
        """Return the class for a type name."""
        try:
            return self._classes[event_type]
        except KeyError:
            raise InvalidInput(f"unknown event type {event_type!r}", field="event_type") from None

    def upcast(self, event_type: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
        """Bring a stored payload up to the current schema version of its class."""
        target = self.get(event_type).schema_version
        while version < target:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise InvalidInput(
                    f"no upcaster for {event_type} from schema version {version}",
                    field="schema_version",
                )
            data = step(dict(data))
            version += 1
        return data

    def decode(self, event_type: str, version: int, data: dict[str, Any]) -> DomainEvent:
        """Upcast and validate a stored payload into its event object."""
        cls = self.get(event_type)
        data = self.upcast(event_type, version, data)
        return validate_event(cls, data)


def validate_event(cls: type[DomainEvent], data: dict[str, Any]) -> DomainEvent:
    """Build an event from a payload, turning pydantic's error into one naming the field."""
    try:
        return cls.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"]
        if first["type"] == "string_pattern_mismatch":
            message = "has an invalid format"  # pydantic's message prints the regex
        raise InvalidInput(f"{field or cls.event_type}: {message}", field=field) from exc


registry = EventRegistry()
