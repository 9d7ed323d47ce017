"""Plain HTML forms: field specs, value parsing, and MedflowError mapped onto the fields.

Forms call the same services as the API; a refused command shows its message next to the field
the error names (MedflowError.field), and a version conflict says who changed the record when.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from medflow.errors import InvalidInput, MedflowError, VersionConflict
from medflow.eventstore import store

GENERAL = "__all__"


@dataclass(frozen=True)
class Field:
    """One form field: name (as the service names it), label, HTML input type."""

    name: str
    label: str
    type: str = "text"  # text, number, date, datetime-local, textarea, select, checkbox, email, tel
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    help: str = ""
    step: str = ""


class Form:
    """Field specs with the submitted values and the errors by field."""

    def __init__(self, fields: list[Field], data: dict[str, str] | None = None) -> None:
        self.fields = fields
        self.values: dict[str, str] = {f.name: "" for f in fields}
        if data:
            self.values.update({k: str(v) for k, v in data.items() if v is not None})
        self.errors: dict[str, str] = {}
        self.conflict = False

    @classmethod
    def from_post(cls, fields: list[Field], post) -> "Form":
        values = {}
        for f in fields:
            if f.type == "checkbox":
                values[f.name] = "on" if post.get(f.name) else ""
            else:
                values[f.name] = post.get(f.name, "").strip()
        return cls(fields, values)

    def rows(self) -> list[dict[str, Any]]:
        """Return the fields with their values and errors, for the template."""
        return [{"f": f, "value": self.values.get(f.name, ""), "error": self.errors.get(f.name)}
                for f in self.fields]

    @property
    def general_error(self) -> str | None:
        return self.errors.get(GENERAL)

    @property
    def field_errors(self) -> list[tuple[str, str]]:
        """Return (field name, message) of the errors shown next to a field, in form order."""
        return [(f.name, self.errors[f.name]) for f in self.fields
                if f.name in self.errors and f.type != "hidden"]

    @property
    def first_error_field(self) -> str | None:
        """Return the first field with an error (it takes the focus when the form comes back)."""
        return next((name for name, _ in self.field_errors), None)

    def check_required(self) -> bool:
        """Mark every required field left empty at once; return whether all are filled.

        The services refuse one missing value at a time; checking here first lets the person
        see all of them in one go, each next to its field.
        """
        for f in self.fields:
            if f.required and not self.values.get(f.name):
                self.errors[f.name] = f"{f.label} is required."
        return not self.errors

    def label(self, name: str) -> str:
        """Return the label a field is shown with (its name when it has none)."""
        return next((f.label for f in self.fields if f.name == name and f.label), name)

    # Parsing: each raises InvalidInput naming the field, like the services do.

    def text(self, name: str) -> str | None:
        return self.values.get(name) or None

    def number(self, name: str, kind=float) -> Any:
        raw = self.values.get(name, "")
        if not raw:
            return None
        try:
            return kind(raw)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise InvalidInput(f"{self.label(name)} must be {what}", field=name) from None

    def date(self, name: str) -> date | None:
        raw = self.values.get(name, "")
        if not raw:
            return None
        value = parse_date(raw)
        if value is None:
            raise InvalidInput(f"{self.label(name)} must be a date (YYYY-MM-DD)", field=name)
        return value

    def datetime(self, name: str) -> datetime | None:
        return parse_local_datetime(self.values.get(name, ""), name, label=self.label(name))

    def checked(self, name: str) -> bool:
        return bool(self.values.get(name))

    def fail(self, exc: MedflowError, *, aggregate_id: UUID | None = None) -> None:
        """Put a refused command's message next to the field it names (or above the form)."""
        if isinstance(exc, VersionConflict):
            self.errors[GENERAL] = conflict_message(aggregate_id, exc)
            self.conflict = True
            return
        name = field_for(exc.field, [f.name for f in self.fields])
        message = exc.message
        if name != GENERAL and message.startswith(f"{exc.field}: "):
            # Validation messages start with the field's code name: show its label instead.
            message = f"{self.label(name)}: {message[len(exc.field) + 2:]}"
        self.errors[name] = message[:1].upper() + message[1:]


def parse_local_datetime(raw: str, name: str, *, label: str = "") -> datetime | None:
    """Parse a datetime-local value (or ISO 8601), in the server's time zone unless it has one."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None:
        day = parse_date(raw)
        if day is None:
            raise InvalidInput(f"{label or name} must be a date and time", field=name)
        value = datetime(day.year, day.month, day.day)
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


def field_for(error_field: str | None, names: list[str]) -> str:
    """Return the form field an error's field names (a dotted path tries each part)."""
    if not error_field:
        return GENERAL
    if error_field in names:
        return error_field
    parts = error_field.split(".")
    for part in (parts[-1], parts[0]):
        if part in names:
            return part
    return GENERAL


def conflict_message(aggregate_id: UUID | None, exc: VersionConflict) -> str:
    """Explain a version conflict: who changed the record last, and when."""
    if aggregate_id is None:
        return f"{exc.message} — reload and try again."
    events = store.load(aggregate_id)
    if not events:
        return f"{exc.message} — reload and try again."
    last = events[-1]
    who = _person(last.metadata)
    when = timezone.localtime(last.timestamp)
    day = "" if when.date() == timezone.localdate() else f" on {when:%Y-%m-%d}"
    return (f"This record was changed by {who} at {when:%H:%M}{day} ({last.event_type}) after you "
            "opened it — reload to see the change, then try again.")


def _person(metadata: dict[str, Any]) -> str:
    """Return the full name and username of whoever an event's metadata names."""
    username = metadata.get("username")
    if not username:
        return "someone"
    user = get_user_model().objects.filter(pk=metadata.get("user_id")).first()
    name = user.get_full_name() if user is not None else ""
    return f"{name} ({username})" if name else username
