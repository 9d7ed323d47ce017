"""The batched migration path: a batch of legacy rows becomes domain commands in one unit of work.

Each row runs the commands the per-row path runs through the application services, on the same
aggregates with the same arguments and metadata, but against a unit of work
(medflow.eventstore.batch): aggregates stay in memory for the batch, and the batch's events are
stored with one multi-stream append. The services' checks (patient visible and not archived,
provider a clinician of the clinic, encounter the patient's and still open, MRN and clinic code
free, result id unused) are made against read-model rows loaded once per batch. Those rows are
current for the batch: the steps run table by table, and no step changes what its own checks
read (encounters end only in the last step; orders placed in the batch are in the unit of work).

The migration acts as MedFlow itself (role "system"), which every permission allows and every
clinic admits, so the services' permission and clinic-scope checks always pass for it.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.utils import timezone

from medflow.access.domain import Clinic
from medflow.access.models import ClinicReadModel, Membership
from medflow.clinical.domain import ClinicalNote, Diagnosis, Encounter, Prescription, chart_id
from medflow.clinical.domain.vitals import Chart
from medflow.clinical.models import EncounterRecord
from medflow.context import Context
from medflow.errors import Conflict, Gone, InvalidInput, NotFound, RuleViolated
from medflow.eventstore.batch import UnitOfWork
from medflow.labs.domain import LabOrder
from medflow.labs.models import LabResultReadModel
from medflow.legacy import mapping as mp
from medflow.legacy import models as m
from medflow.patients.domain import Patient
from medflow.patients.models import PatientReadModel

CLINICIANS = ("doctor", "nurse")
# A converted row: the aggregate it maps to, and which of its events is the row's own
# (an index into the events the row recorded).
Converted = tuple[UUID, int]


class BatchLookups:
    """Read-model facts the services check, loaded once for the rows of one batch."""

    def __init__(self) -> None:
        # patient id -> (clinic id, archived, forgotten)
        self.patients: dict[UUID, tuple[UUID, bool, bool]] = {}
        # encounter id -> (patient id, status)
        self.encounters: dict[UUID, tuple[UUID, str]] = {}
        self.memberships: set[tuple[UUID, int, str]] = set()
        # result id -> order id, for results already in the read model
        self.results: dict[UUID, UUID] = {}
        self.mrns: set[tuple[UUID, str]] = set()
        self.clinic_codes: set[str] = set()
        # legacy provider id -> the clinics of the patients they saw or wrote about
        self.provider_clinics: dict[str, list[UUID]] = {}

    def load_patients(self, patient_ids: Iterable[UUID]) -> None:
        rows = PatientReadModel.objects.filter(id__in=set(patient_ids)).values_list(
            "id", "clinic_id", "archived", "forgotten")
        self.patients.update({pid: (clinic, archived, forgotten)
                              for pid, clinic, archived, forgotten in rows})

    def load_encounters(self, encounter_ids: Iterable[UUID]) -> None:
        ids = {e for e in encounter_ids if e is not None}
        rows = EncounterRecord.objects.filter(id__in=ids).values_list("id", "patient_id", "status")
        self.encounters.update({eid: (pid, status) for eid, pid, status in rows})

    def load_memberships(self, clinic_ids: Iterable[UUID]) -> None:
        rows = Membership.objects.filter(clinic_id__in=set(clinic_ids)).values_list(
            "clinic_id", "user_id", "role")
        self.memberships.update(rows)

    # The services' checks -----------------------------------------------------------------------

    def open_record_clinic(self, patient_id: UUID) -> UUID:
        """Return the clinic of a patient who takes new entries (get_patient + archived)."""
        clinic_id, archived, _ = self.visible_patient(patient_id)
        if archived:
            raise RuleViolated("the patient's record is archived and takes no new entries",
                               code="patient_archived")
        return clinic_id

    def visible_patient(self, patient_id: UUID) -> tuple[UUID, bool, bool]:
        found = self.patients.get(patient_id)
        if found is None:
            raise NotFound(f"no Patient {patient_id}", field="id")
        if found[2]:
            raise Gone(f"Patient {patient_id} was forgotten; only redacted history remains",
                       field="id", code="patient_forgotten")
        return found

    def check_provider(self, clinic_id: UUID, provider_id: int | None,
                       roles: tuple[str, ...] = CLINICIANS) -> None:
        if provider_id is None:
            return
        if not any((clinic_id, provider_id, role) in self.memberships for role in roles):
            raise InvalidInput(
                f"provider_id {provider_id} is not a doctor or nurse of the patient's clinic",
                field="provider_id",
            )

    def check_encounter(self, patient_id: UUID, encounter_id: UUID | None, *,
                        open_only: bool) -> None:
        if encounter_id is None:
            return
        found = self.encounters.get(encounter_id)
        if found is None or found[0] != patient_id:
            raise InvalidInput(f"no encounter {encounter_id} of this patient",
                               field="encounter_id")
        if open_only and found[1] != "in_progress":
            raise RuleViolated(f"encounter {encounter_id} has ended; nothing more is recorded on it",
                               code="encounter_ended")


class BatchSteps:
    """Per legacy table: what to load for a batch of rows, and how one row becomes commands.

    `migrator` supplies contexts and users (medflow.legacy.migrate.Migrator).
    """

    def __init__(self, migrator: Any) -> None:
        self.mg = migrator

    def for_table(self, table: str) -> tuple[Callable, Callable]:
        """Return (prepare(uow, rows) -> lookups, convert(uow, lookups, row) -> Converted)."""
        name = table.removeprefix("legacy_").replace(".", "_")
        return getattr(self, f"prepare_{name}"), getattr(self, name)

    # Helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _patient(legacy_id: str) -> UUID:
        return mp.aggregate_id("legacy_patients", legacy_id)

    @staticmethod
    def _encounter(legacy_id: str | None) -> UUID | None:
        return mp.aggregate_id("legacy_encounters", legacy_id) if legacy_id else None

    def _clinical_lookups(self, rows: list, *, memberships: bool = False) -> BatchLookups:
        look = BatchLookups()
        look.load_patients(self._patient(r.patient_id) for r in rows)
        look.load_encounters(self._encounter(getattr(r, "encounter_id", None)) for r in rows)
        if memberships:
            look.load_memberships(clinic for clinic, _, _ in look.patients.values())
        self.mg.preload_encounter_users(r.encounter_id for r in rows)
        return look

    # Clinics ----------------------------------------------------------------------------------

    def prepare_clinics(self, uow: UnitOfWork, rows: list) -> BatchLookups:
        look = BatchLookups()
        codes = [f"legacy-{r.id}"[:40] for r in rows]
        look.clinic_codes = set(ClinicReadModel.objects.filter(code__in=codes).values_list(
            "code", flat=True))
        uow.preload(Clinic, (mp.aggregate_id("legacy_clinics", r.id) for r in rows))
        self.mg.user(None)
        return look

    def clinics(self, uow: UnitOfWork, look: BatchLookups, row: m.Clinic) -> Converted:
        ctx = self.mg.ctx("legacy_clinics", row.id, None)
        clinic_id = mp.aggregate_id("legacy_clinics", row.id)
        self.create_clinic(uow, look, ctx, row.name, f"legacy-{row.id}"[:40], clinic_id)
        # The import account is a doctor everywhere: it signs for rows that name no provider.
        self.grant(uow, clinic_id, self.mg.user(None))
        return clinic_id, 0

    def create_clinic(self, uow: UnitOfWork, look: BatchLookups, ctx: Context, name: str,
                      code: str, clinic_id: UUID) -> None:
        code = code.strip()
        if code in look.clinic_codes:
            raise Conflict(f"clinic code {code} is taken", field="code", code="clinic_code_taken")
        uow.execute(ctx, Clinic, clinic_id, lambda clinic: clinic.create(name, code),
                    command="CreateClinic", create=True, clinic_id=clinic_id)
        look.clinic_codes.add(code)

    def grant(self, uow: UnitOfWork, clinic_id: UUID, user: Any, ctx: Context | None = None,
              role: str = "doctor") -> bool:
        """Give the user a role unless they have one there; return whether it was given."""
        clinic = uow.get(Clinic, clinic_id)
        if user.pk in clinic.roles:
            return False
        uow.execute(ctx or self.mg.base, Clinic, clinic_id,
                    lambda c: c.grant(user.pk, user.username, role), command="GrantStaffRole")
        return True

    # Patients ---------------------------------------------------------------------------------

    def prepare_patients(self, uow: UnitOfWork, rows: list) -> BatchLookups:
        look = BatchLookups()
        clinics = {self.mg.clinic_of_row(r) for r in rows}
        look.mrns = set(PatientReadModel.objects.filter(clinic_id__in=clinics).values_list(
            "clinic_id", "mrn"))
        uow.preload(Patient, (self._patient(r.id) for r in rows))
        return look

    def patients(self, uow: UnitOfWork, look: BatchLookups, row: m.Patient) -> Converted:
        ctx = self.mg.ctx("legacy_patients", row.id, None)
        clinic_id, patient_id = self.mg.clinic_of_row(row), self._patient(row.id)
        today = timezone.localdate()
        fields = mp.patient_fields(row)

        def decide(patient: Patient) -> None:
            patient.register(clinic_id=clinic_id, today=today, **fields)
            if (clinic_id, patient.demographics["mrn"]) in look.mrns:
                raise Conflict(f"MRN {patient.demographics['mrn']} is already used in this clinic",
                               field="mrn", code="mrn_taken")

        patient = uow.execute(ctx, Patient, patient_id, decide, command="RegisterPatient",
                              create=True, clinic_id=clinic_id)
        look.mrns.add((clinic_id, patient.demographics["mrn"]))
        return patient_id, 0

    # Providers --------------------------------------------------------------------------------

    def prepare_providers(self, uow: UnitOfWork, rows: list) -> BatchLookups:
        self.mg.preload_users(r.id for r in rows)
        self.mg.name_users(rows)
        look = BatchLookups()
        look.provider_clinics = _clinics_of_providers([r.id for r in rows])
        clinics = {c for found in look.provider_clinics.values() for c in found}
        clinics |= {mp.aggregate_id("legacy_clinics", r.clinic_id) for r in rows if r.clinic_id}
        uow.preload(Clinic, clinics)
        return look

    def providers(self, uow: UnitOfWork, look: BatchLookups, row: m.Provider) -> Converted:
        """Make the provider a doctor of their clinic and of their patients' clinics."""
        user = self.mg.user(row.id)
        clinics = set(look.provider_clinics.get(row.id, ()))
        if row.clinic_id:
            clinics.add(mp.aggregate_id("legacy_clinics", row.clinic_id))
        ctx = self.mg.ctx("legacy_providers", row.id, None)
        granted = [c for c in sorted(clinics, key=str) if self.grant(uow, c, user, ctx)]
        return (granted[0] if granted else mp.aggregate_id("legacy_providers", row.id)), 0

    # Encounters -------------------------------------------------------------------------------

    def prepare_encounters(self, uow: UnitOfWork, rows: list) -> BatchLookups:
        self.mg.preload_users(r.provider_id for r in rows)
        look = BatchLookups()
        look.load_patients(self._patient(r.patient_id) for r in rows)
        look.load_memberships(clinic for clinic, _, _ in look.patients.values())
        uow.preload(Encounter, (self._encounter(r.id) for r in rows))
        return look

    def encounters(self, uow: UnitOfWork, look: BatchLookups, row: m.Encounter) -> Converted:
        user = self.mg.user(row.provider_id)
        ctx = self.mg.ctx("legacy_encounters", row.id, row.start, user)
        patient_id, encounter_id = self._patient(row.patient_id), self._encounter(row.id)
        look.visible_patient(patient_id)
        existing = uow.get(Encounter, encounter_id)
        if existing.exists:  # start_encounter is idempotent by encounter id
            if existing.patient_id != patient_id:
                raise Conflict(f"encounter {encounter_id} exists for another patient",
                               field="encounter_id", code="encounter_exists")
            return encounter_id, 0
        clinic_id = look.open_record_clinic(patient_id)
        look.check_provider(clinic_id, user.pk)
        now = timezone.now()
        kind = mp.ENCOUNTER_KINDS.get(row.encounter_class.lower(), "ambulatory")
        reason = mp.encounter_reason(row)
        uow.execute(ctx, Encounter, encounter_id, lambda encounter: encounter.start(
            patient_id=patient_id, clinic_id=clinic_id, provider_id=user.pk, kind=kind,
            appointment_id=None, reason=reason, started_at=row.start or now, now=now,
        ), command="StartEncounter", create=True, clinic_id=clinic_id)
        return encounter_id, 0

    def prepare_encounters_end(self, uow: UnitOfWork, rows: list) -> BatchLookups:
        self.mg.preload_users(r.provider_id for r in rows)
        look = BatchLookups()
        look.load_patients(self._patient(r.patient_id) for r in rows)
        uow.preload(Encounter, (self._encounter(r.id) for r in rows))
        return look

    def encounters_end(self, uow: UnitOfWork, look: BatchLookups, row: m.Encounter) -> Converted:
        from medflow.legacy.migrate import ENCOUNTER_END

        ctx = self.mg.ctx(ENCOUNTER_END, row.id, row.stop, self.mg.user(row.provider_id))
        encounter_id = self._encounter(row.id)

        def decide(encounter: Encounter) -> None:
            self._require_visible(look, encounter)
            now = timezone.now()
            encounter.end(ended_at=row.stop or now, disposition=None, closing_summary=None,
                          now=now)

        uow.execute(ctx, Encounter, encounter_id, decide, command="EndEncounter")
        return encounter_id, 0

    @staticmethod
    def _require_visible(look: BatchLookups, aggregate: Any) -> None:
        try:
            look.visible_patient(aggregate.patient_id)
        except NotFound:
            raise NotFound(f"no {aggregate.aggregate_type} {aggregate.id}", field="id") from None

    # Diagnoses --------------------------------------------------------------------------------

    def prepare_diagnoses(self, uow: UnitOfWork, rows: list) -> BatchLookups:
        look = self._clinical_lookups(rows)
        uow.preload(Diagnosis, (mp.aggregate_id("legacy_diagnoses", r.id) for r in rows))
        return look

    def diagnoses(self, uow: UnitOfWork, look: BatchLookups, row: m.Diagnosis) -> Converted:
        user = self.mg.encounter_user(row.encounter_id)
        diagnosis_id = mp.aggregate_id("legacy_diagnoses", row.id)
        patient_id, encounter_id = self._patient(row.patient_id), self._encounter(row.encounter_id)
        started = datetime.combine(row.start, datetime.min.time()).replace(hour=12, tzinfo=UTC)
        ctx = self.mg.ctx("legacy_diagnoses", row.id, started, user)
        clinic_id = look.open_record_clinic(patient_id)
        look.check_encounter(patient_id, encounter_id, open_only=True)
        today = timezone.localdate()
        uow.execute(ctx, Diagnosis, diagnosis_id, lambda diagnosis: diagnosis.add(
            patient_id=patient_id, today=today, recorded_by=ctx.user_id, code_system="SNOMED CT",
            code=row.code, display=row.description[:200], clinical_status="active",
            onset_date=row.start, encounter_id=encounter_id,
        ), command="AddDiagnosis", create=True, clinic_id=clinic_id)
        if row.stop:
            stopped = datetime.combine(row.stop, datetime.min.time()).replace(hour=12, tzinfo=UTC)

            def resolve(diagnosis: Diagnosis) -> None:
                self._require_visible(look, diagnosis)
                diagnosis.resolve(resolved_on=row.stop, today=today, note=None)

            uow.execute(self.mg.ctx("legacy_diagnoses", row.id, stopped, user), Diagnosis,
                        diagnosis_id, resolve, command="ResolveDiagnosis")
        return diagnosis_id, 0

    # Notes ------------------------------------------------------------------------------------

    def prepare_clinical_notes(self, uow: UnitOfWork, rows: list) -> BatchLookups:
        self.mg.preload_users(r.provider_id for r in rows if r.provider_id)
        look = self._clinical_lookups(rows)
        uow.preload(ClinicalNote, (mp.aggregate_id("legacy_clinical_notes", r.id) for r in rows))
        return look

    def clinical_notes(self, uow: UnitOfWork, look: BatchLookups, row: m.ClinicalNote) -> Converted:
        user = (self.mg.user(row.provider_id) if row.provider_id
                else self.mg.encounter_user(row.encounter_id))
        ctx = self.mg.ctx("legacy_clinical_notes", row.id, row.written_at, user)
        note_id = mp.aggregate_id("legacy_clinical_notes", row.id)
        patient_id, encounter_id = self._patient(row.patient_id), self._encounter(row.encounter_id)
        clinic_id = look.open_record_clinic(patient_id)
        look.check_encounter(patient_id, encounter_id, open_only=False)
        uow.execute(ctx, ClinicalNote, note_id, lambda note: note.draft(
            patient_id=patient_id, author_id=ctx.user_id, encounter_id=encounter_id,
            subjective=row.text, objective="", assessment="", plan="",
        ), command="DraftNote", create=True, clinic_id=clinic_id)

        def sign(note: ClinicalNote) -> None:
            self._require_visible(look, note)
            note.sign(signed_by=ctx.user_id, signed_at=timezone.now())

        uow.execute(ctx, ClinicalNote, note_id, sign, command="SignNote")
        return note_id, 0

    # Lab results ------------------------------------------------------------------------------

    def prepare_lab_results(self, uow: UnitOfWork, rows: list) -> BatchLookups:
        look = self._clinical_lookups(rows, memberships=True)
        result_ids = [mp.aggregate_id("legacy_lab_results", r.id) for r in rows]
        look.results = dict(LabResultReadModel.objects.filter(id__in=result_ids).values_list(
            "id", "order_id"))
        uow.preload(LabOrder, (mp.lab_order_id(r.patient_id, r.encounter_id, r.effective_at)
                               for r in rows))
        return look

    def lab_results(self, uow: UnitOfWork, look: BatchLookups, row: m.LabResult) -> Converted:
        user = self.mg.encounter_user(row.encounter_id)
        ctx = self.mg.ctx("legacy_lab_results", row.id, row.effective_at, user)
        patient_id = self._patient(row.patient_id)
        # An encounter's results hang on one order (its id derives from the encounter's): a row
        # naming another patient's encounter would file its result in that patient's chart.
        look.check_encounter(patient_id, self._encounter(row.encounter_id), open_only=False)
        order_id = mp.lab_order_id(row.patient_id, row.encounter_id, row.effective_at)
        result_id = mp.aggregate_id("legacy_lab_results", row.id)
        if not uow.get(LabOrder, order_id).exists:
            clinic_id, archived, _ = look.visible_patient(patient_id)
            if archived:
                raise RuleViolated("patient is archived and takes no more changes",
                                   code="patient_archived")
            if (clinic_id, user.pk, "doctor") not in look.memberships:
                raise InvalidInput(f"user {user.pk} is not a doctor of the patient's clinic",
                                   field="ordering_provider_id")
            tests = [{"loinc_code": row.loinc_code, "display": row.display}]
            encounter_id = self._encounter(row.encounter_id)
            uow.execute(ctx, LabOrder, order_id, lambda order: order.place(
                patient_id=patient_id, clinic_id=clinic_id, ordering_provider_id=user.pk,
                tests=tests, encounter_id=encounter_id,
            ), command="PlaceLabOrder", create=True, clinic_id=clinic_id)
        look.visible_patient(patient_id)  # require_visible_order
        if look.results.get(result_id, order_id) != order_id:
            raise Conflict(f"result {result_id} is already recorded", field="result_id",
                           code="result_exists")
        fields = mp.lab_fields(row)
        uow.execute(ctx, LabOrder, order_id, lambda order: order.record_result(
            result_id=result_id, now=timezone.now(), **fields,
        ), command="RecordLabResult")
        # The row maps to its result, and to the event recording it (its last one).
        return result_id, -1

    # Medications ------------------------------------------------------------------------------

    def prepare_medications(self, uow: UnitOfWork, rows: list) -> BatchLookups:
        look = self._clinical_lookups(rows)
        uow.preload(Prescription, (mp.aggregate_id("legacy_medications", r.id) for r in rows))
        return look

    def medications(self, uow: UnitOfWork, look: BatchLookups, row: m.Medication) -> Converted:
        user = self.mg.encounter_user(row.encounter_id)
        prescription_id = mp.aggregate_id("legacy_medications", row.id)
        patient_id, encounter_id = self._patient(row.patient_id), self._encounter(row.encounter_id)
        ctx = self.mg.ctx("legacy_medications", row.id, row.start, user)
        clinic_id = look.open_record_clinic(patient_id)
        look.check_encounter(patient_id, encounter_id, open_only=True)
        fields = mp.medication_fields(row)
        uow.execute(ctx, Prescription, prescription_id, lambda prescription: prescription.prescribe(
            patient_id=patient_id, prescriber_id=ctx.user_id, needs_approval=False,
            encounter_id=encounter_id, **fields,
        ), command="PrescribeMedication", create=True, clinic_id=clinic_id)
        if row.stop:
            reason = "stopped (legacy record)"
            stop_ctx = self.mg.ctx("legacy_medications", row.id, row.stop, user).with_reason(reason)

            def discontinue(prescription: Prescription) -> None:
                self._require_visible(look, prescription)
                prescription.discontinue(reason=reason, discontinued_by=stop_ctx.user_id)

            uow.execute(stop_ctx, Prescription, prescription_id, discontinue,
                        command="DiscontinueMedication")
        return prescription_id, 0

    # Vital signs ------------------------------------------------------------------------------

    def prepare_vital_signs(self, uow: UnitOfWork, rows: list) -> BatchLookups:
        look = self._clinical_lookups(rows)
        uow.preload(Encounter, {self._encounter(r.encounter_id) for r in rows if r.encounter_id})
        uow.preload(Chart, {chart_id(self._patient(r.patient_id)) for r in rows
                            if not r.encounter_id})
        return look

    def vital_signs(self, uow: UnitOfWork, look: BatchLookups, row: m.VitalSigns) -> Converted:
        user = self.mg.encounter_user(row.encounter_id)
        ctx = self.mg.ctx("legacy_vital_signs", row.id, row.measured_at, user)
        patient_id, encounter_id = self._patient(row.patient_id), self._encounter(row.encounter_id)
        clinic_id = look.open_record_clinic(patient_id)
        now = timezone.now()
        measured_at = row.measured_at or now
        values = mp.vital_values(row)
        if encounter_id is not None:
            look.check_encounter(patient_id, encounter_id, open_only=False)
            uow.execute(ctx, Encounter, encounter_id, lambda encounter: encounter.record_vital_signs(
                patient_id=patient_id, measured_at=measured_at, now=now, values=values,
            ), command="RecordVitalSigns")
            return encounter_id, 0
        stream = chart_id(patient_id)
        uow.execute(ctx, Chart, stream, lambda chart: chart.record_vital_signs(
            patient_id=patient_id, measured_at=measured_at, now=now, values=values,
        ), command="RecordVitalSigns", create=not uow.get(Chart, stream).exists,
            clinic_id=clinic_id)
        return stream, 0


def _clinics_of_providers(provider_ids: list[str]) -> dict[str, list[UUID]]:
    """Return, per provider, the clinics of the patients they saw or wrote about."""
    found: dict[str, dict[UUID, None]] = defaultdict(dict)
    for source in (m.Encounter, m.ClinicalNote):
        rows = source.objects.filter(provider_id__in=provider_ids).values_list(
            "provider_id", "patient__clinic_id").distinct()
        for provider_id, clinic in sorted(rows, key=lambda r: (r[0], r[1] or "")):
            found[provider_id][mp.aggregate_id("legacy_clinics", clinic or mp.DEFAULT_CLINIC)] = None
    return {provider_id: list(clinics) for provider_id, clinics in found.items()}
