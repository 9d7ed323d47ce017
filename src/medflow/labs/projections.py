"""Inline projection: keep `lab_orders_read_model` and `lab_results_read_model` in the append's
transaction.

`apply` folds one event into plain row dicts; the inline handler and the as-of queries (which fold
an order's events up to a time) share it, so that both read the log the same way.
"""

from collections.abc import Sequence
from typing import Any

from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent
from medflow.labs.domain import (
    CORRECTABLE_FIELDS,
    LabOrderCancelled,
    LabOrderPlaced,
    LabResultCancelled,
    LabResultRecorded,
    LabResultUpdated,
    ResultStatus,
)
from medflow.labs.models import LabOrderReadModel, LabResultReadModel
from medflow.patients.domain import PatientForgotten
from medflow.projections.bulk import Rows, insert_rows, load_rows, update_rows

# The tables this projection owns, in insert order (rebuild and verify use it).
READ_MODELS = [LabOrderReadModel, LabResultReadModel]
STREAM_VERSIONED = [LabOrderReadModel]

Row = dict[str, Any]
ORDER_COLUMNS = tuple(f.attname for f in LabOrderReadModel._meta.concrete_fields)
RESULT_COLUMNS = tuple(f.attname for f in LabResultReadModel._meta.concrete_fields)


def apply(order: Row | None, results: dict[str, Row], recorded: RecordedEvent) -> tuple[Row, set[str]]:
    """Fold one LabOrder event into the order row and its result rows (changed in place).

    Return the order row and the ids of the result rows the event changed.
    """
    event = recorded.event
    changed: set[str] = set()
    was = False  # whether the result the event changes counted before it
    match event:
        case LabOrderPlaced():
            order = {
                "id": recorded.aggregate_id, "patient_id": event.patient_id,
                "clinic_id": event.clinic_id, "ordering_provider_id": event.ordering_provider_id,
                "tests": [test.model_dump() for test in event.tests],
                "priority": event.priority.value, "reason": event.reason or "",
                "encounter_id": event.encounter_id, "status": "placed", "result_count": 0,
                "placed_at": recorded.timestamp,
            }
        case LabResultRecorded():
            key = str(event.result_id)
            was = _standing(results.get(key))
            results[key] = {
                "id": event.result_id, "patient_id": event.patient_id,
                "order_id": recorded.aggregate_id, "loinc_code": event.loinc_code,
                "display": event.display, **_values(event),
                "status": ResultStatus.FINAL.value, "recorded_at": recorded.timestamp,
            }
            changed.add(key)
        case LabResultUpdated():
            key = str(event.result_id)
            was = _standing(results[key])
            results[key].update(_values(event), status=ResultStatus.CORRECTED.value)
            changed.add(key)
        case LabResultCancelled():
            key = str(event.result_id)
            was = _standing(results[key])
            results[key]["status"] = ResultStatus.CANCELLED.value
            changed.add(key)
        case LabOrderCancelled():
            order["status"] = "cancelled"
    for key in changed:
        results[key].update(updated_at=recorded.timestamp, version=recorded.version)
    if order["status"] != "cancelled":
        # The order's count moves by what this event did to its one result, instead of a
        # recount of all its results at every event (quadratic in a panel's size).
        standing = order["result_count"] + sum(_standing(results[key]) - was for key in changed)
        order.update(status="resulted" if standing else "placed", result_count=standing)
    order.update(updated_at=recorded.timestamp, version=recorded.version)
    return order, changed


def _standing(result: Row | None) -> bool:
    """Tell whether a result row counts towards its order (it exists and is not cancelled)."""
    return result is not None and result["status"] != ResultStatus.CANCELLED


def _values(event: LabResultRecorded | LabResultUpdated) -> Row:
    values = {name: getattr(event, name) for name in CORRECTABLE_FIELDS}
    flag = values["abnormal_flag"]
    values["abnormal_flag"] = flag.value if flag is not None else None
    return values


@inline.on(LabOrderPlaced, LabResultRecorded, LabResultUpdated, LabResultCancelled,
           LabOrderCancelled)
def on_lab_order_event(recorded: RecordedEvent) -> None:
    order_id = recorded.aggregate_id
    current = LabOrderReadModel.objects.filter(id=order_id).values(*ORDER_COLUMNS).first()
    results = {
        str(row["id"]): row
        for row in LabResultReadModel.objects.filter(order_id=order_id).values(*RESULT_COLUMNS)
    }
    order, changed = apply(current, results, recorded)
    LabOrderReadModel.objects.update_or_create(id=order_id, defaults=order)
    for key in changed:
        LabResultReadModel.objects.update_or_create(id=results[key]["id"], defaults=results[key])


@inline.batched(PatientForgotten)
def apply_batch(events: Sequence[RecordedEvent]) -> None:
    """Fold a page of lab order events into their rows, as the handler above would one by one."""
    orders = Rows(LabOrderReadModel)
    order_ids = {recorded.aggregate_id for recorded in events}
    orders.load(order_ids)
    results: dict[Any, dict[str, Row]] = {order_id: {} for order_id in order_ids}
    stored: set[str] = set()
    # An order placed in this page has no stored results (and the table has no index on
    # order_id: do not scan it for nothing).
    placed_here = {r.aggregate_id for r in events if isinstance(r.event, LabOrderPlaced)}
    for row in load_rows(LabResultReadModel, "order_id", order_ids - placed_here):
        results[row["order_id"]][str(row["id"])] = row
        stored.add(str(row["id"]))
    touched: dict[tuple[Any, str], None] = {}
    for recorded in events:
        order_id = recorded.aggregate_id
        current = orders.get(order_id)
        order, changed = apply(dict(current) if current else None, results[order_id], recorded)
        orders.put({**(current or {}), **order})
        touched.update(((order_id, key), None) for key in changed)
    orders.write()
    rows = [results[order_id][key] for order_id, key in touched]
    insert_rows(LabResultReadModel, [row for row in rows if str(row["id"]) not in stored])
    update_rows(LabResultReadModel, [row for row in rows if str(row["id"]) in stored])


@inline.on(PatientForgotten)
def forget_patient(recorded: RecordedEvent) -> None:
    # These rows hold the patient's free text in clear: a forgotten patient's go.
    LabResultReadModel.objects.filter(patient_id=recorded.aggregate_id).delete()
    LabOrderReadModel.objects.filter(patient_id=recorded.aggregate_id).delete()
