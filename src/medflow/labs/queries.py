"""Read side of the labs context, scoped to the caller's clinics through the patient."""

import re
from datetime import datetime
from typing import Any
from uuid import UUID

from medflow.context import Context
from medflow.errors import InvalidInput, NotFound
from medflow.eventstore import store
from medflow.labs.domain import ResultStatus
from medflow.labs.models import LabOrderReadModel, LabResultReadModel
from medflow.labs.projections import ORDER_COLUMNS, RESULT_COLUMNS, apply
from medflow.patients.queries import get_patient

Row = dict[str, Any]
_LOINC = re.compile(r"^\d{1,7}-\d$")


def require_visible_order(ctx: Context, order_id: UUID) -> LabOrderReadModel:
    """Return an order of a patient the caller may see; any other answers "not found"."""
    row = LabOrderReadModel.objects.filter(id=order_id).first()
    if row is not None:
        try:
            get_patient(ctx, row.patient_id)
            return row
        except NotFound:
            pass
    raise NotFound(f"no LabOrder {order_id}", field="id")


def replay_order(order_id: UUID, as_of: datetime | None = None) -> tuple[Row | None, dict[str, Row]]:
    """Fold an order's events (up to `as_of`) into its read-model rows, without touching them."""
    order: Row | None = None
    results: dict[str, Row] = {}
    for recorded in store.load(order_id, as_of=as_of):
        order, _ = apply(order, results, recorded)
    return order, results


def patient_lab_orders(ctx: Context, patient_id: UUID, *, as_of: datetime | None = None) -> list[Row]:
    """Return a patient's lab orders, newest first, as they stood at `as_of` (default: now)."""
    get_patient(ctx, patient_id)
    rows = LabOrderReadModel.objects.filter(patient_id=patient_id).order_by("-placed_at", "id")
    if as_of is None:
        return list(rows.values(*ORDER_COLUMNS))
    ids = rows.filter(placed_at__lte=as_of).values_list("id", flat=True)
    orders = [replay_order(order_id, as_of)[0] for order_id in ids]
    return [order for order in orders if order is not None]


def get_lab_order(
    ctx: Context, order_id: UUID, *, as_of: datetime | None = None
) -> tuple[Row, list[Row]]:
    """Return an order and its results (oldest specimen first), now or as of a time."""
    row = require_visible_order(ctx, order_id)
    if as_of is None:
        order = LabOrderReadModel.objects.filter(id=row.id).values(*ORDER_COLUMNS).get()
        results = list(LabResultReadModel.objects.filter(order_id=row.id).values(*RESULT_COLUMNS))
    else:
        order, by_id = replay_order(order_id, as_of)
        if order is None:
            raise NotFound(f"LabOrder {order_id} did not exist at {as_of}", field="as_of")
        results = list(by_id.values())
    return order, sorted(results, key=_series_key)


def patient_lab_results(
    ctx: Context, patient_id: UUID, *, loinc: str | None = None, as_of: datetime | None = None,
    include_cancelled: bool = False,
) -> list[Row]:
    """Return a patient's results over time (oldest specimen first), optionally of one test."""
    get_patient(ctx, patient_id)
    if loinc is not None and not _LOINC.match(loinc):
        raise InvalidInput("loinc must be a LOINC code such as 2345-7", field="loinc")
    rows = LabResultReadModel.objects.filter(patient_id=patient_id)
    if loinc is not None:
        rows = rows.filter(loinc_code=loinc)
    if as_of is None:
        results = list(rows.values(*RESULT_COLUMNS))
    else:
        # A result recorded by then may have been corrected since: replay its order up to then.
        order_ids = set(rows.filter(recorded_at__lte=as_of).values_list("order_id", flat=True))
        results = [
            result
            for order_id in order_ids
            for result in replay_order(order_id, as_of)[1].values()
            if loinc is None or result["loinc_code"] == loinc
        ]
    if not include_cancelled:
        results = [r for r in results if r["status"] != ResultStatus.CANCELLED]
    return sorted(results, key=_series_key)


def _series_key(row: Row) -> tuple:
    return row["effective_at"], row["recorded_at"], str(row["id"])
