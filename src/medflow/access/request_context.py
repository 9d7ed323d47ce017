"""Build the command/query context of an HTTP request."""

import uuid

from django.http import HttpRequest

from medflow.access.models import Membership
from medflow.access.services import break_glass_patients
from medflow.context import Context
from medflow.errors import InvalidInput, PermissionDenied


def _request_id(request: HttpRequest) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given[:100] if given else str(uuid.uuid4())


def _correlation(request_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(request_id)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, request_id)


def _scope(roles: dict[uuid.UUID, str], active: str | None) -> tuple[frozenset, str]:
    """Return the clinics this request acts in and the one role that holds in all of them.

    A role is granted per clinic, so the context never pairs a role with a clinic where the
    person holds another: with X-Clinic-ID the request acts in that clinic alone; without it, in
    all their clinics when the role is the same everywhere, else with no role (reads only).
    """
    if active:
        try:
            clinic = uuid.UUID(active)
        except ValueError:
            raise InvalidInput("X-Clinic-ID must be a UUID", field="X-Clinic-ID") from None
        if clinic not in roles:
            raise PermissionDenied("X-Clinic-ID names a clinic you do not work in",
                                   field="X-Clinic-ID")
        return frozenset({clinic}), roles[clinic]
    distinct = set(roles.values())
    return frozenset(roles), distinct.pop() if len(distinct) == 1 else ""


# Break-glass grants open patients for reading only: they are honoured on these methods alone, so
# that no write path (which might look a patient up through the same scoped queries) sees them.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def context_for(request: HttpRequest) -> Context:
    """Return the caller's context: user, role in the active clinic, and all their clinics.

    On reads it also carries the patients the caller opened by break-glass (unexpired grants).
    """
    cached = getattr(request, "_medflow_context", None)
    if cached is not None:
        return cached
    user = request.user
    roles = {m.clinic_id: m.role for m in Membership.objects.filter(user=user)}
    clinic_ids, role = _scope(roles, request.headers.get("X-Clinic-ID"))
    request_id = _request_id(request)
    ctx = Context(
        user_id=user.pk,
        username=user.get_username(),
        role=role,
        clinic_ids=clinic_ids,
        correlation_id=_correlation(request_id),
        request_id=request_id,
        client_ip=request.META.get("REMOTE_ADDR"),
        reads=[],
        break_glass=break_glass_patients(user.pk) if request.method in READ_METHODS else frozenset(),
    )
    request._medflow_context = ctx
    return ctx
