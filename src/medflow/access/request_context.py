"""Build the command/query context of an HTTP request."""

import uuid

from django.http import HttpRequest

from medflow.access.models import Membership
from medflow.context import Context
from medflow.errors import InvalidInput


def _request_id(request: HttpRequest) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given[:100] if given else str(uuid.uuid4())


def _correlation(request_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(request_id)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, request_id)


def context_for(request: HttpRequest) -> Context:
    """Return the caller's context: user, role in the active clinic, and all their clinics."""
    cached = getattr(request, "_medflow_context", None)
    if cached is not None:
        return cached
    user = request.user
    roles = {m.clinic_id: m.role for m in Membership.objects.filter(user=user)}
    active = request.headers.get("X-Clinic-ID")
    role = ""
    if active:
        try:
            role = roles.get(uuid.UUID(active), "")
        except ValueError:
            raise InvalidInput("X-Clinic-ID must be a UUID", field="X-Clinic-ID") from None
    elif len(set(roles.values())) == 1:
        role = next(iter(roles.values()))
    request_id = _request_id(request)
    ctx = Context(
        user_id=user.pk,
        username=user.get_username(),
        role=role,
        clinic_ids=frozenset(roles),
        correlation_id=_correlation(request_id),
        request_id=request_id,
        client_ip=request.META.get("REMOTE_ADDR"),
        reads=[],
    )
    request._medflow_context = ctx
    return ctx
