"""Labs REST endpoints: parse, authorise through the context, call a service or query."""

from datetime import datetime
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from ninja import Header, Router, Status

from medflow.access.request_context import context_for
from medflow.api_common import ERRORS, WriteOut, parse_command_id, parse_if_match, require_aware
from medflow.labs import queries, services
from medflow.labs.schemas import (
    LabOrderDetailOut,
    LabOrderIn,
    LabOrderListOut,
    LabResultCorrectionIn,
    LabResultIn,
    LabResultListOut,
    LabResultWriteOut,
    ReasonIn,
)

router = Router(tags=["labs"])


@router.post("/patients/{patient_id}/lab-orders", response={201: WriteOut, **ERRORS},
             summary="Order lab tests (doctors)")
def place_order(
    request: HttpRequest, patient_id: UUID, payload: LabOrderIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    result = services.place_lab_order(
        context_for(request), patient_id, command_id=parse_command_id(idempotency_key),
        **payload.model_dump(exclude_unset=True),
    )
    return Status(201, {"id": result.aggregate_id, "version": result.version})


@router.get("/patients/{patient_id}/lab-orders", response={200: LabOrderListOut, **ERRORS},
            summary="A patient's lab orders, newest first")
def list_orders(request: HttpRequest, patient_id: UUID, as_of: datetime | None = None):
    as_of = require_aware(as_of)
    items = queries.patient_lab_orders(context_for(request), patient_id, as_of=as_of)
    return {"items": items, "count": len(items), "as_of": as_of}


@router.get("/patients/{patient_id}/lab-results", response={200: LabResultListOut, **ERRORS},
            summary="A patient's lab results over time, optionally of one LOINC code")
def list_results(
    request: HttpRequest, patient_id: UUID, loinc: str | None = None,
    as_of: datetime | None = None, include_cancelled: bool = False,
):
    as_of = require_aware(as_of)
    items = queries.patient_lab_results(
        context_for(request), patient_id, loinc=loinc, as_of=as_of,
        include_cancelled=include_cancelled,
    )
    return {"items": items, "count": len(items), "as_of": as_of}


@router.get("/lab-orders/{order_id}", response={200: LabOrderDetailOut, **ERRORS},
            summary="A lab order and its results")
def read_order(
    request: HttpRequest, response: HttpResponse, order_id: UUID, as_of: datetime | None = None,
):
    as_of = require_aware(as_of)
    order, results = queries.get_lab_order(context_for(request), order_id, as_of=as_of)
    response["ETag"] = f'"{order["version"]}"'
    return {**order, "results": results, "as_of": as_of}


@router.post("/lab-orders/{order_id}/results", response={201: LabResultWriteOut, **ERRORS},
             summary="Record a result (doctors, nurses); If-Match optional")
def record_result(
    request: HttpRequest, response: HttpResponse, order_id: UUID, payload: LabResultIn,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    # If-Match is optional: a new result depends on no state the caller read, and results of
    # one order often arrive from several analysers at once.
    command_id = parse_command_id(idempotency_key)
    fields = payload.model_dump(exclude_unset=True)
    result_id = fields.pop("result_id", None) or services.new_result_id(command_id)
    result = services.record_lab_result(
        context_for(request), order_id, result_id=result_id,
        expected_version=parse_if_match(if_match, required=False), command_id=command_id,
        **fields,
    )
    response["ETag"] = f'"{result.version}"'
    return Status(201, {"id": result_id, "order_id": order_id, "version": result.version})


@router.post("/lab-orders/{order_id}/results/{result_id}/correct",
             response={200: LabResultWriteOut, **ERRORS},
             summary="Correct a result, saying why (If-Match: the order's version)")
def correct_result(
    request: HttpRequest, response: HttpResponse, order_id: UUID, result_id: UUID,
    payload: LabResultCorrectionIn,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    expected = parse_if_match(if_match, required=True)
    changes = payload.model_dump(exclude_unset=True)
    reason = changes.pop("reason")
    result = services.correct_lab_result(
        context_for(request), order_id, result_id, changes, reason=reason,
        expected_version=expected, command_id=parse_command_id(idempotency_key),
    )
    response["ETag"] = f'"{result.version}"'
    return {"id": result_id, "order_id": order_id, "version": result.version}


@router.post("/lab-orders/{order_id}/results/{result_id}/cancel",
             response={200: LabResultWriteOut, **ERRORS},
             summary="Cancel a result, saying why (If-Match: the order's version)")
def cancel_result(
    request: HttpRequest, response: HttpResponse, order_id: UUID, result_id: UUID,
    payload: ReasonIn,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    expected = parse_if_match(if_match, required=True)
    result = services.cancel_lab_result(
        context_for(request), order_id, result_id, reason=payload.reason,
        expected_version=expected, command_id=parse_command_id(idempotency_key),
    )
    response["ETag"] = f'"{result.version}"'
    return {"id": result_id, "order_id": order_id, "version": result.version}


@router.post("/lab-orders/{order_id}/cancel", response={200: WriteOut, **ERRORS},
             summary="Cancel an order without standing results (doctors; If-Match)")
def cancel_order(
    request: HttpRequest, response: HttpResponse, order_id: UUID, payload: ReasonIn,
    if_match: str | None = Header(None, alias="If-Match"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    expected = parse_if_match(if_match, required=True)
    result = services.cancel_lab_order(
        context_for(request), order_id, reason=payload.reason, expected_version=expected,
        command_id=parse_command_id(idempotency_key),
    )
    response["ETag"] = f'"{result.version}"'
    return {"id": result.aggregate_id, "version": result.version}
