"""GET /api/patients/{id}/timeline."""

from datetime import datetime
from typing import Any
from uuid import UUID

from django.http import HttpRequest
from ninja import Query, Router, Schema

from medflow.access.request_context import context_for
from medflow.api_common import ERRORS, require_aware
from medflow.timeline.queries import patient_timeline

router = Router(tags=["timeline"])


class TimelineEntryOut(Schema):
    event_id: UUID
    event_type: str
    kind: str
    summary: str
    occurred_at: datetime
    recorded_at: datetime
    who: str
    role: str
    reason: str
    aggregate_id: UUID
    version: int
    data: dict[str, Any]


class TimelineOut(Schema):
    items: list[TimelineEntryOut]
    count: int
    limit: int
    offset: int


@router.get("/{patient_id}/timeline", response={200: TimelineOut, **ERRORS},
            summary="A patient's events from every context, newest first")
def timeline(
    request: HttpRequest, patient_id: UUID, kind: list[str] | None = Query(None),
    as_of: datetime | None = None, limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0),
):
    count, rows = patient_timeline(
        context_for(request), patient_id, kinds=kind, as_of=require_aware(as_of),
        limit=limit, offset=offset,
    )
    items = [
        {
            "event_id": r.event_id, "event_type": r.event_type, "kind": r.kind,
            "summary": r.summary, "occurred_at": r.occurred_at, "recorded_at": r.recorded_at,
            "who": r.username, "role": r.role, "reason": r.reason,
            "aggregate_id": r.aggregate_id, "version": r.version, "data": r.data,
        }
        for r in rows
    ]
    return {"items": items, "count": count, "limit": limit, "offset": offset}
