"""Domain events: frozen pydantic models, registered by type name, each with a schema version.

No Django here: the domain layers import this module.
"""

import functools
import re
from collections.abc import Callable
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from medflow.errors import InvalidInput

# What a forgotten subject's personal fields read back as.
REDACTED = "[redacted]"


class DomainEvent(BaseModel):
    """Base of every event. Subclasses are past-tense facts with a `schema_version`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: ClassVar[int] = 1
    event_type: ClassVar[str] = ""
    # The payload field holding when the fact happened in the world (e.g. when vitals were
    # measured), if that differs from when it was recorded.
    effective_time_field: ClassVar[str | None] = None
    # Fields holding personal data: stored encrypted with the data subject's key (sealing.py).
    personal_fields: ClassVar[frozenset[str]] = frozenset()
    # Whether the stream's own id is the data subject (a Patient stream), instead of `patient_id`.
    subject_is_stream: ClassVar[bool] = False
    # The timeline's kind for the event, when not its aggregate type (e.g. "vitals").
    timeline_kind: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Called before pydantic finishes building the class, so register in
        # __pydantic_init_subclass__ instead; only name the event here.
        cls.event_type = cls.__name__

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        registry.register(cls)

    def data_subject(self, aggregate_id: UUID) -> UUID | None:
        """Return whose personal data this event carries (the patient), if anyone's."""
        if self.subject_is_stream:
            return aggregate_id
        subject = self.value_of("patient_id")
        return subject if isinstance(subject, UUID) else None

    def value_of(self, name: str) -> Any:
        """Return the value of a field, or None when this event has no field of that name."""
        # Not getattr(self, name, None): on a model without the field that goes through
        # pydantic's __getattr__ and an AttributeError, 2.5 us an event in a replay.
        return self.__dict__.get(name)

    def summary(self) -> str:
        """Return a one-line human description (subclasses say more)."""
        return _spelt_out(self.event_type)

    def payload(self) -> dict[str, Any]:
        """Return the JSON-ready payload, leaving out top-level fields the command did not set
        (nested objects are kept whole, defaults included)."""
        # warnings=False: a redacted event (built unvalidated) holds "[redacted]" in typed fields.
        # The serializer itself, as model_dump calls it, without model_dump's keyword handling
        # (half the time of a small event's dump; a replay folds every patient event this way).
        return type(self).__pydantic_serializer__.to_python(
            self, mode="json", include=self.model_fields_set, warnings=False)


@functools.cache
def _spelt_out(event_type: str) -> str:
    # "PatientUpdated" -> "Patient updated", once per type (a replay summarises every event).
    return re.sub(r"(?<!^)(?=[A-Z])", " ", event_type).capitalize()


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

    def decode(
        self, event_type: str, version: int, data: dict[str, Any],
        *, redacted: frozenset[str] = frozenset(),
    ) -> DomainEvent:
        """Upcast and validate a stored payload into its event object.

        Redacted fields (personal data of a forgotten subject) hold REDACTED and cannot validate:
        the other fields are validated one by one and the event is built around them.
        """
        cls = self.get(event_type)
        if version < cls.schema_version:
            data = self.upcast(event_type, version, data)
        if not redacted:
            return validate_event(cls, data)
        clear = {}
        for name, value in data.items():
            if name in redacted or name not in cls.model_fields:
                continue
            try:
                clear[name] = _field_adapter(cls, name).validate_python(value)
            except PydanticValidationError as exc:
                raise InvalidInput(f"{name}: {exc.errors()[0]['msg']}", field=name) from exc
        return cls.model_construct(_fields_set=set(data), **{**data, **clear})


@functools.cache
def _field_adapter(cls: type[DomainEvent], name: str) -> TypeAdapter:
    return TypeAdapter(cls.model_fields[name].annotation)


def validate_event(cls: type[DomainEvent], data: dict[str, Any]) -> DomainEvent:
    """Build an event from a payload, turning pydantic's error into one naming the field."""
    try:
        # model_validate without its keyword handling: a replay validates every event.
        return cls.__pydantic_validator__.validate_python(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"]
        if first["type"] == "string_pattern_mismatch":
            message = "has an invalid format"  # pydantic's message prints the regex
        raise InvalidInput(f"{field or cls.event_type}: {message}", field=field) from exc


registry = EventRegistry()
