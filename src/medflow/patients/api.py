"""Patients REST endpoints: parse, authorise through the context, call a service or query."""

from datetime import datetime
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from ninja import Header, Query, Router, Status

from medflow.access.request_context import context_for
from medflow.api_common import (
    ERRORS,
    WriteOut,
    parse_command_id,
    parse_if_match,
    require_aware,
)
from medflow.errors import InvalidInput
from medflow.patients import queries, services
from medflow.patients.schemas import (
    ArchiveIn,
    ForgetIn,
    HistoryEntryOut,
    PatientIn,
    PatientListOut,
    PatientOut,
    PatientPatchIn,
)

router = Router(tags=["patients"])
def _out(data: dict, version: int, as_of: datetime | None = None) -> dict:
    return {**data, "version": version, "as_of": as_of}


@router.post("", response={201: WriteOut, **ERRORS}, summary="Register a patient")
def register(
    request: HttpRequest, payload: PatientIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    ctx = context_for(request)
    fields = payload.model_dump(exclude_unset=True)
    clinic_id = fields.pop("clinic_id", None)
    if clinic_id is None:
        if len(ctx.clinic_ids) != 1:
            raise InvalidInput("clinic_id is required when you work in several clinics",
                               field="clinic_id")
        clinic_id = next(iter(ctx.clinic_ids))
    result = services.register_patient(
        ctx, clinic_id=clinic_id, command_id=parse_command_id(idempotency_key), **fields
    )
    return Status(201, {"id": result.aggregate_id, "version": result.version})


@router.get("", response={200: PatientListOut, **ERRORS}, summary="Search patients")
def search(
    request: HttpRequest,
    q: str = "",
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0),
):
    count, rows = queries.search_patients(context_for(request), q, limit=limit, offset=offset)
    items = [_out(row.current_data, row.version) for row in rows]
    return {"items": items, "count": count, "limit": limit, "offset": offset}


@router.get("/{patient_id}", response={200: PatientOut, **ERRORS}, summary="Read a patient")
def read(
    request: HttpRequest, response: HttpResponse, patient_id: UUID,
    as_of: datetime | None = None, version: int | None = Query(None, ge=1),
):
    ctx = context_for(request)
    as_of = require_aware(as_of)
    if as_of is None and version is None:
        view = queries.get_patient(ctx, patient_id)
    else:
        view = queries.get_patient_at(ctx, patient_id, as_of=as_of, version=version)
    response["ETag"] = f'"{view.version}"'
    return _out(view.data, view.version, as_of)


@router.patch("/{patient_id}", response={200: WriteOut, **ERRORS}, summary="Change a patient")
def update(
    request: HttpRequest, response: HttpResponse, patient_id: UUID, payload: PatientPatchIn,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    expected = parse_if_match(if_match, required=True)
    result = services.update_patient(
        context_for(request), patient_id, payload.model_dump(exclude_unset=True),
        expected_version=expected, command_id=parse_command_id(idempotency_key),
    )
    response["ETag"] = f'"{result.version}"'
    return {"id": result.aggregate_id, "version": result.version}


@router.post("/{patient_id}/archive", response={200: WriteOut, **ERRORS},
             summary="Archive a patient")
def archive(
    request: HttpRequest, patient_id: UUID, payload: ArchiveIn | None = None,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    result = services.archive_patient(
        context_for(request), patient_id,
        expected_version=parse_if_match(if_match, required=False),
        reason=payload.reason if payload else None,
        command_id=parse_command_id(idempotency_key),
    )
    return {"id": result.aggregate_id, "version": result.version}


@router.get("/{patient_id}/history", response={200: list[HistoryEntryOut], **ERRORS},
            summary="A patient's events")
def history(request: HttpRequest, patient_id: UUID):
    events = queries.patient_history(context_for(request), patient_id)
    return [
        {
            "event_id": e.id, "type": e.event_type, "version": e.version,
            "position": e.position, "timestamp": e.timestamp,
            "who": e.metadata.get("username"), "user_id": e.metadata.get("user_id"),
            "role": e.metadata.get("role"), "reason": e.metadata.get("reason"),
            "data": e.data, "metadata": e.metadata,
        }
        for e in events
    ]


@router.post("/{patient_id}/forget", response={200: WriteOut, **ERRORS},
             summary="Erase a patient's personal data for good (admins)")
def forget(request: HttpRequest, patient_id: UUID, payload: ForgetIn):
    result = services.forget_patient(
        context_for(request), patient_id, reason=payload.reason,
        override_retention=payload.override_retention,
    )
    return {"id": result.aggregate_id, "version": result.version}
