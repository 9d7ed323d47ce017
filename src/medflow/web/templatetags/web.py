"""Template filters of the web UI."""

from datetime import date, datetime

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from medflow.access.permissions import allows

register = template.Library()


@register.filter
def when(value) -> str:
    """Show a datetime (or an ISO 8601 string) in local time as YYYY-MM-DD HH:MM."""
    if isinstance(value, str):
        try:
            value = parse_datetime(value) or value
        except ValueError:
            return value
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


@register.filter
def label(value) -> str:
    """Turn a snake_case name into words."""
    return str(value).replace("_", " ")


@register.filter
def may(role: str, permission: str) -> bool:
    """Tell whether the role may run a command: `{% if role|may:"clinical.prescribe" %}`.

    The services check again; this only hides actions the person could not take.
    """
    return bool(role) and allows(role, permission)


@register.filter
def number(value) -> str:
    """Show a number without a needless fraction (82.0 -> 82, 37.25 -> 37.25)."""
    if isinstance(value, int | float):
        return f"{value:g}"
    return "" if value is None else str(value)
