"""Application services of the patients context: the only writers of patient streams."""

from datetime import date
from typing import Any
from uuid import UUID, uuid4

from django.db import IntegrityError
from django.utils import timezone

from medflow.context import Context
from medflow.errors import Conflict, NotFound
from medflow.eventstore.commands import CommandResult, execute
from medflow.patients.domain import Patient
from medflow.patients.models import PatientReadModel
from medflow.patients.queries import can_see_clinic


def _today() -> date:
    return timezone.localdate()


def _check_mrn_free(clinic_id: UUID, mrn: str | None, patient_id: UUID) -> None:
    if mrn is None:
        return
    mrn = mrn.strip()
    taken = (
        PatientReadModel.objects.filter(clinic_id=clinic_id, mrn=mrn).exclude(id=patient_id).exists()
    )
    if taken:
        raise Conflict(f"MRN {mrn} is already used in this clinic", field="mrn", code="mrn_taken")


def _mrn_race_to_conflict(exc: IntegrityError) -> None:
    if "patient_mrn_per_clinic" in str(exc) or "patient_read_model.clinic_id" in str(exc):
        raise Conflict("MRN is already used in this clinic", field="mrn", code="mrn_taken") from exc
    raise exc


def register_patient(
    ctx: Context, *, clinic_id: UUID, patient_id: UUID | None = None,
    command_id: UUID | None = None, **fields: Any,
) -> CommandResult:
    """Register a patient at a clinic the caller works in."""
    if not can_see_clinic(ctx, clinic_id):
        raise NotFound(f"no clinic {clinic_id}", field="clinic_id")
    patient_id = patient_id or uuid4()

    def decide(patient: Patient) -> None:
        patient.register(clinic_id=clinic_id, today=_today(), **fields)
        _check_mrn_free(clinic_id, patient.demographics["mrn"], patient_id)

    try:
        return execute(
            ctx, Patient, patient_id, decide, command="RegisterPatient", create=True,
            clinic_id=clinic_id, command_id=command_id,
        )
    except IntegrityError as exc:
        _mrn_race_to_conflict(exc)
        raise


def update_patient(
    ctx: Context, patient_id: UUID, changes: dict[str, Any], *, expected_version: int | None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Change a patient's demographics, contact details or address."""

    def decide(patient: Patient) -> None:
        _require_visible(ctx, patient)
        patient.update(changes, today=_today())
        if patient.pending:
            _check_mrn_free(patient.clinic_id, patient.pending[-1].payload().get("mrn"), patient.id)

    try:
        return execute(
            ctx, Patient, patient_id, decide, command="UpdatePatient",
            expected_version=expected_version, command_id=command_id,
        )
    except IntegrityError as exc:
        _mrn_race_to_conflict(exc)
        raise


def archive_patient(
    ctx: Context, patient_id: UUID, *, expected_version: int | None = None,
    reason: str | None = None, command_id: UUID | None = None,
) -> CommandResult:
    """Close a patient's record."""

    def decide(patient: Patient) -> None:
        _require_visible(ctx, patient)
        patient.archive(reason)

    return execute(
        ctx.with_reason(reason), Patient, patient_id, decide, command="ArchivePatient",
        expected_version=expected_version, command_id=command_id,
    )


def _require_visible(ctx: Context, patient: Patient) -> None:
    # A patient of another clinic answers "not found", so that existence does not leak.
    if not can_see_clinic(ctx, patient.clinic_id):
        raise NotFound(f"no Patient {patient.id}", field="id")
