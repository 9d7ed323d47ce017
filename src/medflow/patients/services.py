"""Application services of the patients context: the only writers of patient streams."""

from datetime import date
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from medflow.context import Context, require_permission
from medflow.errors import Conflict, InvalidInput, NotFound, RuleViolated
from medflow.eventstore.commands import CommandResult, execute
from medflow.eventstore.erasure import erase_subject, retention_holds
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


def _mrn_race_to_conflict(exc: IntegrityError, mrn: str | None = None) -> None:
    if "patient_mrn_per_clinic" in str(exc) or "patient_read_model.clinic_id" in str(exc):
        named = f"MRN {mrn.strip()}" if mrn else "MRN"
        raise Conflict(f"{named} is already used in this clinic", field="mrn",
                       code="mrn_taken") from exc
    raise exc


def register_patient(
    ctx: Context, *, clinic_id: UUID, patient_id: UUID | None = None,
    command_id: UUID | None = None, **fields: Any,
) -> CommandResult:
    """Register a patient at a clinic the caller works in."""
    if not can_see_clinic(ctx, clinic_id):
        raise NotFound(f"no clinic {clinic_id}", field="clinic_id")

    def decide(patient: Patient) -> None:
        patient.register(clinic_id=clinic_id, today=_today(), **fields)

    # A taken MRN is refused by the read model's unique (clinic, MRN) constraint, inside the
    # command's transaction, so the registration is rolled back whole; no query beforehand (a
    # round trip on every registration, and racy without the constraint anyway).
    try:
        return execute(
            ctx, Patient, patient_id, decide, command="RegisterPatient", create=True,
            clinic_id=clinic_id, command_id=command_id,
        )
    except IntegrityError as exc:
        _mrn_race_to_conflict(exc, fields.get("mrn"))
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
        _mrn_race_to_conflict(exc, changes.get("mrn"))
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


def forget_patient(
    ctx: Context, patient_id: UUID, *, reason: str, override_retention: bool = False
) -> CommandResult:
    """Erase a patient's personal data for good (GDPR Art. 17), as an admin, with a reason.

    Records that must still be kept (settings.MEDFLOW_RETENTION_YEARS, per record type) make
    this refuse, unless the admin overrides the retention period (Art. 17(3) exemptions decided
    by a person, recorded on the event).
    """
    require_permission(ctx, "patients.forget")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason is required to forget a patient", field="reason")
    with transaction.atomic():
        holds = retention_holds(patient_id, settings.MEDFLOW_RETENTION_YEARS)
        if holds and not override_retention:
            kept = "; ".join(f"{h.aggregate_type} until {h.keep_until:%Y-%m-%d}" for h in holds)
            raise RuleViolated(
                f"records must be kept ({kept}); an admin may override with a reason",
                field="override_retention", code="retention_period",
            )

        def decide(patient: Patient) -> None:
            _require_visible(ctx, patient)
            patient.forget(retention_overridden=bool(holds))

        result = execute(ctx.with_reason(reason), Patient, patient_id, decide,
                         command="ForgetPatient")
        erase_subject(patient_id)
    return result
