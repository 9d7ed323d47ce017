"""Work REST endpoints: tasks and alerts of the caller's clinics."""

from typing import Literal
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from ninja import Header, Query, Router, Status

from medflow.access.request_context import context_for
from medflow.api_common import ERRORS, WriteOut, parse_command_id, parse_if_match
from medflow.work import queries, services
from medflow.work.schemas import (
    AlertAcknowledgeIn,
    AlertListOut,
    TaskCompleteIn,
    TaskIn,
    TaskListOut,
    TaskOut,
    TaskReassignIn,
)

router = Router(tags=["work"])


@router.post("/tasks", response={201: WriteOut, **ERRORS}, summary="Assign a task")
def assign(
    request: HttpRequest, payload: TaskIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    result = services.assign_task(
        context_for(request), command_id=parse_command_id(idempotency_key),
        **payload.model_dump(exclude_unset=True),
    )
    return Status(201, {"id": result.aggregate_id, "version": result.version})


@router.get("/tasks", response={200: TaskListOut, **ERRORS},
            summary="A work queue: urgent first, then soonest due (default: your pending tasks)")
def task_list(
    request: HttpRequest, assignee: int | None = None,
    status: Literal["pending", "completed", "all"] = "pending",
    limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0),
):
    count, rows = queries.task_queue(
        context_for(request), assignee_id=assignee, status=status, limit=limit, offset=offset
    )
    return {"items": rows, "count": count, "limit": limit, "offset": offset}


@router.get("/tasks/{task_id}", response={200: TaskOut, **ERRORS}, summary="Read a task")
def read_task(request: HttpRequest, response: HttpResponse, task_id: UUID):
    row = queries.get_task(context_for(request), task_id)
    response["ETag"] = f'"{row.version}"'
    return row


@router.post("/tasks/{task_id}/complete", response={200: WriteOut, **ERRORS},
             summary="Complete a task (If-Match)")
def complete(
    request: HttpRequest, response: HttpResponse, task_id: UUID,
    payload: TaskCompleteIn | None = None,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    expected = parse_if_match(if_match, required=True)
    result = services.complete_task(
        context_for(request), task_id, note=payload.note if payload else None,
        expected_version=expected, command_id=parse_command_id(idempotency_key),
    )
    response["ETag"] = f'"{result.version}"'
    return {"id": result.aggregate_id, "version": result.version}


@router.post("/tasks/{task_id}/reassign", response={200: WriteOut, **ERRORS},
             summary="Hand a task to someone else (If-Match)")
def reassign(
    request: HttpRequest, response: HttpResponse, task_id: UUID, payload: TaskReassignIn,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    expected = parse_if_match(if_match, required=True)
    result = services.reassign_task(
        context_for(request), task_id, payload.assignee_id, expected_version=expected,
        command_id=parse_command_id(idempotency_key),
    )
    response["ETag"] = f'"{result.version}"'
    return {"id": result.aggregate_id, "version": result.version}


@router.get("/alerts", response={200: AlertListOut, **ERRORS},
            summary="Alerts of your clinics: most severe first, then longest waiting")
def alert_list(
    request: HttpRequest, status: Literal["unacknowledged", "acknowledged", "all"] = "unacknowledged",
    patient_id: UUID | None = None,
    limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0),
):
    count, rows = queries.alert_list(
        context_for(request), status=status, patient_id=patient_id, limit=limit, offset=offset
    )
    return {"items": rows, "count": count, "limit": limit, "offset": offset}


@router.post("/alerts/{alert_id}/acknowledge", response={200: WriteOut, **ERRORS},
             summary="Acknowledge an alert (doctors, nurses; If-Match)")
def acknowledge(
    request: HttpRequest, response: HttpResponse, alert_id: UUID,
    payload: AlertAcknowledgeIn | None = None,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    expected = parse_if_match(if_match, required=True)
    result = services.acknowledge_alert(
        context_for(request), alert_id, note=payload.note if payload else None,
        expected_version=expected, command_id=parse_command_id(idempotency_key),
    )
    response["ETag"] = f'"{result.version}"'
    return {"id": result.aggregate_id, "version": result.version}
