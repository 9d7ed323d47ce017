"""Scheduling REST endpoints: parse, authorise through the context, call a service or query.

Every state change of an existing appointment (reschedule, cancel, check-in, complete,
no-show) requires If-Match: each acts on a slot or a status the caller saw, and a stale screen
(an appointment moved or cancelled meanwhile) must not check in or cancel the wrong visit.
Who may call what is in services.py.
"""

from datetime import date, datetime
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Header, Query, Router, Status

from medflow.access.request_context import context_for
from medflow.api_common import ERRORS, WriteOut, parse_command_id, parse_if_match, require_aware
from medflow.errors import InvalidInput
from medflow.eventstore.commands import CommandResult
from medflow.scheduling import queries, services
from medflow.scheduling.schemas import (
    AppointmentIn,
    AppointmentListOut,
    AppointmentOut,
    CancelIn,
    CheckInIn,
    CompleteIn,
    ProviderDayOut,
    RescheduleIn,
)

router = Router(tags=["scheduling"])


def _written(response: HttpResponse, result: CommandResult) -> dict:
    response["ETag"] = f'"{result.version}"'
    return {"id": result.aggregate_id, "version": result.version}


@router.post("/appointments", response={201: WriteOut, **ERRORS}, summary="Book an appointment")
def schedule(
    request: HttpRequest, payload: AppointmentIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    result = services.schedule_appointment(
        context_for(request), command_id=parse_command_id(idempotency_key),
        **payload.model_dump(exclude_unset=True),
    )
    return Status(201, {"id": result.aggregate_id, "version": result.version})


@router.get("/appointments/{appointment_id}", response={200: AppointmentOut, **ERRORS},
            summary="Read an appointment")
def read(
    request: HttpRequest, response: HttpResponse, appointment_id: UUID,
    as_of: datetime | None = None,
):
    ctx = context_for(request)
    as_of = require_aware(as_of)
    if as_of is None:
        view = queries.get_appointment(ctx, appointment_id)
    else:
        view = queries.get_appointment_at(ctx, appointment_id, as_of)
    response["ETag"] = f'"{view.version}"'
    return {**view.data, "version": view.version, "as_of": as_of}


@router.post("/appointments/{appointment_id}/reschedule", response={200: WriteOut, **ERRORS},
             summary="Move an appointment to another slot")
def reschedule(
    request: HttpRequest, response: HttpResponse, appointment_id: UUID, payload: RescheduleIn,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    result = services.reschedule_appointment(
        context_for(request), appointment_id,
        expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key), **payload.model_dump(exclude_unset=True),
    )
    return _written(response, result)


@router.post("/appointments/{appointment_id}/cancel", response={200: WriteOut, **ERRORS},
             summary="Cancel an appointment")
def cancel(
    request: HttpRequest, response: HttpResponse, appointment_id: UUID,
    payload: CancelIn | None = None,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    payload = payload or CancelIn()
    result = services.cancel_appointment(
        context_for(request), appointment_id, reason=payload.reason, by=payload.by,
        expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key),
    )
    return _written(response, result)


@router.post("/appointments/{appointment_id}/check-in", response={200: WriteOut, **ERRORS},
             summary="Check a patient in (starts an encounter)")
def check_in(
    request: HttpRequest, response: HttpResponse, appointment_id: UUID,
    payload: CheckInIn | None = None,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    result = services.check_in_appointment(
        context_for(request), appointment_id, at=payload.at if payload else None,
        expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key),
    )
    return _written(response, result)


@router.post("/appointments/{appointment_id}/complete", response={200: WriteOut, **ERRORS},
             summary="Close the visit of a checked-in patient")
def complete(
    request: HttpRequest, response: HttpResponse, appointment_id: UUID,
    payload: CompleteIn | None = None,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    result = services.complete_appointment(
        context_for(request), appointment_id, at=payload.at if payload else None,
        expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key),
    )
    return _written(response, result)


@router.post("/appointments/{appointment_id}/no-show", response={200: WriteOut, **ERRORS},
             summary="Record that the patient did not come")
def no_show(
    request: HttpRequest, response: HttpResponse, appointment_id: UUID,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    result = services.mark_no_show(
        context_for(request), appointment_id,
        expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key),
    )
    return _written(response, result)


@router.get("/patients/{patient_id}/appointments", response={200: AppointmentListOut, **ERRORS},
            summary="A patient's appointments by start time")
def patient_appointments(request: HttpRequest, patient_id: UUID, as_of: datetime | None = None):
    as_of = require_aware(as_of)
    views = queries.patient_appointments(context_for(request), patient_id, as_of=as_of)
    items = [{**view.data, "version": view.version, "as_of": as_of} for view in views]
    return {"items": items, "count": len(items), "as_of": as_of}


@router.get("/providers/{provider_id}/day", response={200: ProviderDayOut, **ERRORS},
            summary="A doctor's or nurse's appointments on one day, with patient names")
def provider_day(
    request: HttpRequest, provider_id: int, day: date = Query(..., alias="date"),
    tz: str | None = None, include_cancelled: bool = False,
):
    zone = _zone(tz)
    entries = queries.provider_day(
        context_for(request), provider_id, day, zone, include_cancelled=include_cancelled
    )
    items = [
        {
            **entry.appointment.current_data, "version": entry.appointment.version,
            "patient": entry.patient,
        }
        for entry in entries
    ]
    return {"provider_id": provider_id, "date": day, "time_zone": str(zone), "items": items,
            "count": len(items)}


def _zone(name: str | None):
    if not name:
        return timezone.get_default_timezone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"tz must be an IANA time zone such as Europe/Paris, not {name!r}",
                           field="tz") from None
