"""Application services of the clinical context: the only writers of clinical streams.

Who may do what (MedFlow itself, the "system" role, may do everything):
- doctor: everything below;
- nurse: start and end encounters, record vital signs and allergies, draft notes and revise their
  own drafts; only doctors diagnose, take an allergy off the list, prescribe, approve, sign and
  amend, because those are the acts a doctor answers for;
- receptionist: none of these, and no clinical reads either (see queries.py);
- admin: reads only.
A patient outside the caller's clinics is "not found", never "forbidden".
"""

from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid4

from django.utils import timezone

from medflow.access.models import Membership
from medflow.clinical.domain import (
    Allergy,
    ClinicalNote,
    Diagnosis,
    Encounter,
    Prescription,
    chart_id,
)
from medflow.clinical.domain.vitals import Chart
from medflow.clinical.models import AllergyRecord, EncounterRecord
from medflow.context import Context, require_permission
from medflow.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RuleViolated, VersionConflict
from medflow.eventstore import store
from medflow.eventstore.commands import CommandResult, execute, load_aggregate
from medflow.patients.queries import get_patient

DOCTOR = ("doctor",)
CLINICIANS = ("doctor", "nurse")


def _now() -> datetime:
    return timezone.now()


def _today() -> date:
    return timezone.localdate()


# Scope ------------------------------------------------------------------------------------------

def _patient_clinic(ctx: Context, patient_id: UUID) -> UUID:
    """Return the clinic of a patient the caller may see and add records to."""
    return _open_record_clinic(get_patient(ctx, patient_id).data)


def _open_record_clinic(data: dict[str, Any]) -> UUID:
    if data.get("archived"):
        raise RuleViolated("the patient's record is archived and takes no new entries",
                           code="patient_archived")
    return UUID(data["clinic_id"])


def _require_visible(ctx: Context, aggregate: Any) -> None:
    # Another clinic's record answers "not found", so that its existence does not leak.
    try:
        get_patient(ctx, aggregate.patient_id)
    except NotFound:
        raise NotFound(f"no {aggregate.aggregate_type} {aggregate.id}", field="id") from None


def _check_provider(clinic_id: UUID, provider_id: int | None) -> None:
    if provider_id is None:
        return
    if not Membership.objects.filter(
        clinic_id=clinic_id, user_id=provider_id, role__in=CLINICIANS
    ).exists():
        raise InvalidInput(
            f"provider_id {provider_id} is not a doctor or nurse of the patient's clinic",
            field="provider_id",
        )


def check_encounter(patient_id: UUID, encounter_id: UUID | None, *, open_only: bool) -> None:
    """Check that an encounter a record points to is the patient's (and still open)."""
    if encounter_id is None:
        return
    row = EncounterRecord.objects.filter(id=encounter_id, patient_id=patient_id).first()
    if row is None:
        raise InvalidInput(f"no encounter {encounter_id} of this patient", field="encounter_id")
    if open_only and row.status != "in_progress":
        raise RuleViolated(f"encounter {encounter_id} has ended; nothing more is recorded on it",
                           code="encounter_ended")


# Encounters -------------------------------------------------------------------------------------

def _existing_encounter(encounter_id: UUID, patient_id: UUID) -> CommandResult | None:
    encounter = load_aggregate(Encounter, encounter_id)
    if not encounter.exists:
        return None
    if encounter.patient_id != patient_id:
        raise Conflict(f"encounter {encounter_id} exists for another patient",
                       field="encounter_id", code="encounter_exists")
    return CommandResult(encounter_id, encounter.version, replayed=True)


def start_encounter(
    ctx: Context, *, patient_id: UUID, provider_id: int | None, kind: str = "ambulatory",
    appointment_id: UUID | None = None, reason: str | None = None,
    encounter_id: UUID | None = None, started_at: datetime | None = None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Start an encounter, from an appointment or as a walk-in.

    Idempotent by `encounter_id`: starting an encounter that exists returns it, unchanged.
    Without `provider_id`, a doctor or nurse starting it is its provider.
    """
    require_permission(ctx, "clinical.start_encounter")
    patient = get_patient(ctx, patient_id)
    if encounter_id is not None and (existing := _existing_encounter(encounter_id, patient_id)):
        return existing
    clinic_id = _open_record_clinic(patient.data)
    if provider_id is None and ctx.role in CLINICIANS:
        provider_id = ctx.user_id
    _check_provider(clinic_id, provider_id)
    encounter_id = encounter_id or uuid4()
    now = _now()

    def decide(encounter: Encounter) -> None:
        encounter.start(
            patient_id=patient_id, clinic_id=clinic_id, provider_id=provider_id, kind=kind,
            appointment_id=appointment_id, reason=reason, started_at=started_at or now, now=now,
        )

    try:
        return execute(
            ctx, Encounter, encounter_id, decide, command="StartEncounter",
            create=True, clinic_id=clinic_id, command_id=command_id,
        )
    except VersionConflict:
        # Lost a race with an identical call: its encounter is ours.
        if existing := _existing_encounter(encounter_id, patient_id):
            return existing
        raise


def end_encounter(
    ctx: Context, encounter_id: UUID, *, ended_at: datetime | None = None,
    disposition: str | None = None, closing_summary: str | None = None,
    expected_version: int | None = None, command_id: UUID | None = None,
) -> CommandResult:
    """End an encounter, once."""
    require_permission(ctx, "clinical.end_encounter")

    def decide(encounter: Encounter) -> None:
        _require_visible(ctx, encounter)
        now = _now()
        encounter.end(ended_at=ended_at or now, disposition=disposition,
                      closing_summary=closing_summary, now=now)

    return execute(
        ctx, Encounter, encounter_id, decide, command="EndEncounter",
        expected_version=expected_version, command_id=command_id,
    )


# Vital signs ------------------------------------------------------------------------------------

def record_vital_signs(
    ctx: Context, *, patient_id: UUID, measured_at: datetime | None = None,
    encounter_id: UUID | None = None, command_id: UUID | None = None, **values: Any,
) -> CommandResult:
    """Record a set of vital signs, on the encounter they were measured in or on the chart.

    Returns the owning stream (the encounter or the patient's chart) and its new version.
    """
    require_permission(ctx, "clinical.record_vital_signs")
    clinic_id = _patient_clinic(ctx, patient_id)
    now = _now()
    measured_at = measured_at or now
    if encounter_id is not None:
        check_encounter(patient_id, encounter_id, open_only=False)

        def on_encounter(encounter: Encounter) -> None:
            encounter.record_vital_signs(patient_id=patient_id, measured_at=measured_at, now=now,
                                         values=values)

        return execute(ctx, Encounter, encounter_id, on_encounter, command="RecordVitalSigns",
                       command_id=command_id)

    stream = chart_id(patient_id)

    def on_chart(chart: Chart) -> None:
        chart.record_vital_signs(patient_id=patient_id, measured_at=measured_at, now=now,
                                 values=values)

    return execute(
        ctx, Chart, stream, on_chart, command="RecordVitalSigns",
        create=store.current_version(stream) == 0, clinic_id=clinic_id, command_id=command_id,
    )


# Diagnoses --------------------------------------------------------------------------------------

def add_diagnosis(
    ctx: Context, *, patient_id: UUID, code_system: str, code: str, display: str,
    clinical_status: str = "active", onset_date: date | str | None = None,
    encounter_id: UUID | None = None, diagnosis_id: UUID | None = None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Add a coded diagnosis to a patient's problem list."""
    require_permission(ctx, "clinical.add_diagnosis")
    clinic_id = _patient_clinic(ctx, patient_id)
    check_encounter(patient_id, encounter_id, open_only=True)

    def decide(diagnosis: Diagnosis) -> None:
        diagnosis.add(
            patient_id=patient_id, today=_today(), recorded_by=ctx.user_id,
            code_system=code_system, code=code, display=display,
            clinical_status=clinical_status, onset_date=onset_date, encounter_id=encounter_id,
        )

    return execute(
        ctx, Diagnosis, diagnosis_id, decide, command="AddDiagnosis", create=True,
        clinic_id=clinic_id, command_id=command_id,
    )


def change_diagnosis_status(
    ctx: Context, diagnosis_id: UUID, *, clinical_status: str, reason: str | None = None,
    expected_version: int | None = None, command_id: UUID | None = None,
) -> CommandResult:
    """Move a diagnosis to another clinical status (remission, relapse, ...)."""
    require_permission(ctx, "clinical.change_diagnosis_status")

    def decide(diagnosis: Diagnosis) -> None:
        _require_visible(ctx, diagnosis)
        diagnosis.change_status(clinical_status, reason=reason)

    return execute(
        ctx, Diagnosis, diagnosis_id, decide, command="ChangeDiagnosisStatus",
        expected_version=expected_version, command_id=command_id,
    )


def resolve_diagnosis(
    ctx: Context, diagnosis_id: UUID, *, resolved_on: date | str | None = None,
    note: str | None = None, expected_version: int | None = None, command_id: UUID | None = None,
) -> CommandResult:
    """Resolve a diagnosis (today, unless another date is given)."""
    require_permission(ctx, "clinical.resolve_diagnosis")

    def decide(diagnosis: Diagnosis) -> None:
        _require_visible(ctx, diagnosis)
        today = _today()
        diagnosis.resolve(resolved_on=resolved_on or today, today=today, note=note)

    return execute(
        ctx, Diagnosis, diagnosis_id, decide, command="ResolveDiagnosis",
        expected_version=expected_version, command_id=command_id,
    )


# Allergies --------------------------------------------------------------------------------------

def record_allergy(
    ctx: Context, *, patient_id: UUID, code_system: str, code: str, display: str, category: str,
    type: str = "allergy", criticality: str | None = None,
    reactions: list[dict[str, Any]] | None = None, onset_date: date | str | None = None,
    note: str | None = None, encounter_id: UUID | None = None, allergy_id: UUID | None = None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Record an allergy or intolerance; one to a substance already on the active list is a
    conflict (add the reaction to a note instead of listing the substance twice)."""
    require_permission(ctx, "clinical.record_allergy")
    clinic_id = _patient_clinic(ctx, patient_id)
    check_encounter(patient_id, encounter_id, open_only=True)

    def decide(allergy: Allergy) -> None:
        allergy.add(
            patient_id=patient_id, today=_today(), recorded_by=ctx.user_id,
            code_system=code_system, code=code, display=display, type=type, category=category,
            criticality=criticality, reactions=reactions, onset_date=onset_date, note=note,
            encounter_id=encounter_id,
        )
        # The aggregate has normalised the code system's name and the code: compare those.
        event = allergy.pending[-1]
        if AllergyRecord.objects.filter(
            patient_id=patient_id, status="active", code_system=event.code_system.value,
            code=event.code,
        ).exists():
            raise Conflict(f"{event.display} is already on the patient's active allergies",
                           field="code", code="allergy_exists")

    return execute(
        ctx, Allergy, allergy_id, decide, command="RecordAllergy", create=True,
        clinic_id=clinic_id, command_id=command_id,
    )


def resolve_allergy(
    ctx: Context, allergy_id: UUID, *, reason: str | None, resolved_on: date | str | None = None,
    expected_version: int | None = None, command_id: UUID | None = None,
) -> CommandResult:
    """Take an allergy off the active list (today, unless another date is given); the reason is
    required."""
    require_permission(ctx, "clinical.resolve_allergy")

    def decide(allergy: Allergy) -> None:
        _require_visible(ctx, allergy)
        today = _today()
        allergy.resolve(resolved_on=resolved_on or today, today=today, reason=reason)

    return execute(
        ctx, Allergy, allergy_id, decide, command="ResolveAllergy",
        expected_version=expected_version, command_id=command_id,
    )


def refute_allergy(
    ctx: Context, allergy_id: UUID, *, reason: str | None, entered_in_error: bool = False,
    expected_version: int | None = None, command_id: UUID | None = None,
) -> CommandResult:
    """Mark an allergy refuted (or entered in error); the reason is required."""
    require_permission(ctx, "clinical.refute_allergy")

    def decide(allergy: Allergy) -> None:
        _require_visible(ctx, allergy)
        allergy.refute(reason=reason, entered_in_error=entered_in_error)

    return execute(
        ctx, Allergy, allergy_id, decide, command="RefuteAllergy",
        expected_version=expected_version, command_id=command_id,
    )


# Prescriptions ----------------------------------------------------------------------------------

def prescribe_medication(
    ctx: Context, *, patient_id: UUID, drug_code: str, drug_name: str, dose: str, route: str,
    frequency: str, reason: str | None = None, needs_approval: bool = False,
    encounter_id: UUID | None = None, prescription_id: UUID | None = None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Prescribe a medication; one that needs approval stays pending until another doctor approves."""
    require_permission(ctx, "clinical.prescribe")
    clinic_id = _patient_clinic(ctx, patient_id)
    check_encounter(patient_id, encounter_id, open_only=True)

    def decide(prescription: Prescription) -> None:
        prescription.prescribe(
            patient_id=patient_id, prescriber_id=ctx.user_id, drug_code=drug_code,
            drug_name=drug_name, dose=dose, route=route, frequency=frequency, reason=reason,
            needs_approval=needs_approval, encounter_id=encounter_id,
        )

    return execute(
        ctx, Prescription, prescription_id, decide, command="PrescribeMedication",
        create=True, clinic_id=clinic_id, command_id=command_id,
    )


def approve_prescription(
    ctx: Context, prescription_id: UUID, *, expected_version: int | None = None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Approve a pending prescription (a doctor other than its prescriber)."""
    require_permission(ctx, "clinical.approve_prescription")

    def decide(prescription: Prescription) -> None:
        _require_visible(ctx, prescription)
        prescription.approve(approved_by=ctx.user_id)

    return execute(
        ctx, Prescription, prescription_id, decide, command="ApprovePrescription",
        expected_version=expected_version, command_id=command_id,
    )


def discontinue_medication(
    ctx: Context, prescription_id: UUID, *, reason: str | None,
    expected_version: int | None = None, command_id: UUID | None = None,
) -> CommandResult:
    """Stop a medication, or withdraw a pending prescription; the reason is required."""
    require_permission(ctx, "clinical.discontinue_medication")

    def decide(prescription: Prescription) -> None:
        _require_visible(ctx, prescription)
        prescription.discontinue(reason=reason, discontinued_by=ctx.user_id)

    return execute(
        ctx.with_reason(reason), Prescription, prescription_id, decide,
        command="DiscontinueMedication", expected_version=expected_version, command_id=command_id,
    )


# Notes ------------------------------------------------------------------------------------------

def draft_note(
    ctx: Context, *, patient_id: UUID, subjective: str = "", objective: str = "",
    assessment: str = "", plan: str = "", encounter_id: UUID | None = None,
    note_id: UUID | None = None, command_id: UUID | None = None,
) -> CommandResult:
    """Start a SOAP note (possibly written after its encounter ended)."""
    require_permission(ctx, "clinical.draft_note")
    clinic_id = _patient_clinic(ctx, patient_id)
    check_encounter(patient_id, encounter_id, open_only=False)

    def decide(note: ClinicalNote) -> None:
        note.draft(
            patient_id=patient_id, author_id=ctx.user_id, encounter_id=encounter_id,
            subjective=subjective, objective=objective, assessment=assessment, plan=plan,
        )

    return execute(
        ctx, ClinicalNote, note_id, decide, command="DraftNote", create=True,
        clinic_id=clinic_id, command_id=command_id,
    )


def revise_note(
    ctx: Context, note_id: UUID, changes: dict[str, Any], *, expected_version: int | None = None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Change sections of a draft note; a nurse revises only their own drafts."""
    require_permission(ctx, "clinical.revise_note")

    def decide(note: ClinicalNote) -> None:
        _require_visible(ctx, note)
        if ctx.role == "nurse" and note.s.author_id != ctx.user_id:
            raise PermissionDenied("only the note's author or a doctor may revise it", field="role")
        note.revise(changes, revised_by=ctx.user_id)

    return execute(
        ctx, ClinicalNote, note_id, decide, command="ReviseNote",
        expected_version=expected_version, command_id=command_id,
    )


def sign_note(
    ctx: Context, note_id: UUID, *, expected_version: int | None = None,
    command_id: UUID | None = None,
) -> CommandResult:
    """Sign a draft note: from now on it is only amended."""
    require_permission(ctx, "clinical.sign_note")

    def decide(note: ClinicalNote) -> None:
        _require_visible(ctx, note)
        note.sign(signed_by=ctx.user_id, signed_at=_now())

    return execute(
        ctx, ClinicalNote, note_id, decide, command="SignNote",
        expected_version=expected_version, command_id=command_id,
    )


def amend_note(
    ctx: Context, note_id: UUID, *, amendment: str | None, reason: str | None,
    expected_version: int | None = None, command_id: UUID | None = None,
) -> CommandResult:
    """Add an amendment, with its reason, to a signed note."""
    require_permission(ctx, "clinical.amend_note")

    def decide(note: ClinicalNote) -> None:
        _require_visible(ctx, note)
        note.amend(amendment=amendment, reason=reason, amended_by=ctx.user_id, amended_at=_now())

    return execute(
        ctx.with_reason(reason), ClinicalNote, note_id, decide, command="AmendNote",
        expected_version=expected_version, command_id=command_id,
    )
