"""Application services of the labs context: the only writers of lab order streams."""

from typing import Any
from uuid import UUID, uuid4, uuid5

from django.utils import timezone

from medflow.access.models import Membership
from medflow.clinical.services import check_encounter
from medflow.context import Context, require_permission
from medflow.errors import Conflict, InvalidInput, RuleViolated
from medflow.eventstore.commands import CommandResult, execute
from medflow.labs.domain import LabOrder
from medflow.labs.models import LabResultReadModel
from medflow.labs.queries import require_visible_order
from medflow.patients.queries import get_patient

# Result ids derived from an Idempotency-Key, so that a retried request names the same result.
RESULT_ID_NAMESPACE = UUID("6f0b3c1e-3d55-4c1a-9d0e-2b7f4a8c9e11")


def new_result_id(command_id: UUID | None) -> UUID:
    """Return the id of a new result: derived from the command id when there is one."""
    return uuid5(RESULT_ID_NAMESPACE, str(command_id)) if command_id else uuid4()


def place_lab_order(
    ctx: Context, patient_id: UUID, *, tests: list[dict[str, Any]],
    ordering_provider_id: int | None = None, order_id: UUID | None = None,
    command_id: UUID | None = None, **fields: Any,
) -> CommandResult:
    """Order lab tests for a patient of the caller's clinic; the caller orders unless a provider is named."""
    require_permission(ctx, "labs.place_order")
    patient = get_patient(ctx, patient_id)
    if patient.data.get("archived"):
        raise RuleViolated("patient is archived and takes no more changes", code="patient_archived")
    clinic_id = UUID(patient.data["clinic_id"])
    provider = ordering_provider_id if ordering_provider_id is not None else ctx.user_id
    if provider is None:
        raise InvalidInput("ordering_provider_id is required", field="ordering_provider_id")
    if not Membership.objects.filter(user_id=provider, clinic_id=clinic_id, role="doctor").exists():
        raise InvalidInput(f"user {provider} is not a doctor of the patient's clinic",
                           field="ordering_provider_id")
    # An order filed on another patient's encounter would show in that patient's chart. An ended
    # encounter is allowed: results (and late orders) are often filed after the visit closes.
    check_encounter(patient_id, fields.get("encounter_id"), open_only=False)

    def decide(order: LabOrder) -> None:
        order.place(patient_id=patient_id, clinic_id=clinic_id, ordering_provider_id=provider,
                    tests=tests, **fields)

    return execute(
        ctx, LabOrder, order_id, decide, command="PlaceLabOrder", create=True,
        clinic_id=clinic_id, command_id=command_id,
    )


def record_lab_result(
    ctx: Context, order_id: UUID, *, result_id: UUID | None = None,
    expected_version: int | None = None, command_id: UUID | None = None, **fields: Any,
) -> CommandResult:
    """Record a result on an order (doctors and nurses: there is no lab role)."""
    require_permission(ctx, "labs.record_result")
    result_id = result_id or new_result_id(command_id)

    # Before any version check, so that a stranger learns nothing from a 409.
    require_visible_order(ctx, order_id)

    def decide(order: LabOrder) -> None:
        # The read model's key is global: refuse an id another order already uses.
        if LabResultReadModel.objects.filter(id=result_id).exclude(order_id=order.id).exists():
            raise Conflict(f"result {result_id} is already recorded", field="result_id",
                           code="result_exists")
        order.record_result(result_id=result_id, now=timezone.now(), **fields)

    return execute(
        ctx, LabOrder, order_id, decide, command="RecordLabResult",
        expected_version=expected_version, command_id=command_id,
    )


def correct_lab_result(
    ctx: Context, order_id: UUID, result_id: UUID, changes: dict[str, Any], *, reason: str,
    expected_version: int | None, command_id: UUID | None = None,
) -> CommandResult:
    """Correct a result's value, unit, limits, flag or time, saying why."""
    require_permission(ctx, "labs.correct_result")

    # Before any version check, so that a stranger learns nothing from a 409.
    require_visible_order(ctx, order_id)

    def decide(order: LabOrder) -> None:
        order.correct_result(result_id, changes, reason=reason, now=timezone.now())

    return execute(
        ctx.with_reason(reason), LabOrder, order_id, decide, command="CorrectLabResult",
        expected_version=expected_version, command_id=command_id,
    )


def cancel_lab_result(
    ctx: Context, order_id: UUID, result_id: UUID, *, reason: str,
    expected_version: int | None, command_id: UUID | None = None,
) -> CommandResult:
    """Withdraw a result, saying why."""
    require_permission(ctx, "labs.cancel_result")

    # Before any version check, so that a stranger learns nothing from a 409.
    require_visible_order(ctx, order_id)

    def decide(order: LabOrder) -> None:
        order.cancel_result(result_id, reason=reason)

    return execute(
        ctx.with_reason(reason), LabOrder, order_id, decide, command="CancelLabResult",
        expected_version=expected_version, command_id=command_id,
    )


def cancel_lab_order(
    ctx: Context, order_id: UUID, *, reason: str, expected_version: int | None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Withdraw an order that has no standing result."""
    require_permission(ctx, "labs.cancel_order")

    # Before any version check, so that a stranger learns nothing from a 409.
    require_visible_order(ctx, order_id)

    def decide(order: LabOrder) -> None:
        order.cancel(reason=reason)

    return execute(
        ctx.with_reason(reason), LabOrder, order_id, decide, command="CancelLabOrder",
        expected_version=expected_version, command_id=command_id,
    )
