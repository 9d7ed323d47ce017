"""GET /api/patients/{id}/access-log: who read this patient's data (admins)."""

from datetime import datetime
from uuid import UUID

from django.http import HttpRequest
from ninja import Query, Router, Schema

from medflow.access.request_context import context_for
from medflow.api_common import ERRORS
from medflow.audit.models import AccessLogEntry
from medflow.context import require_permission
from medflow.patients.queries import visible_patient

router = Router(tags=["audit"])


class AccessLogEntryOut(Schema):
    id: int
    at: datetime
    user_id: int | None
    username: str
    role: str
    clinic_id: UUID | None
    action: str
    reason: str
    break_glass: bool
    request_id: str
    client_ip: str


class AccessLogOut(Schema):
    items: list[AccessLogEntryOut]
    count: int
    limit: int
    offset: int


@router.get("/{patient_id}/access-log", response={200: AccessLogOut, **ERRORS},
            summary="Who accessed this patient's data (admins)")
def access_log(request: HttpRequest, patient_id: UUID, limit: int = Query(50, ge=1, le=500),
               offset: int = Query(0, ge=0), break_glass_only: bool = False):
    ctx = context_for(request)
    require_permission(ctx, "audit.read_access_log")
    visible_patient(ctx, patient_id)
    rows = AccessLogEntry.objects.filter(patient_id=patient_id)
    if break_glass_only:
        rows = rows.filter(break_glass=True)
    rows = rows.order_by("-id")
    return {"items": list(rows[offset:offset + limit].values()), "count": rows.count(),
            "limit": limit, "offset": offset}
