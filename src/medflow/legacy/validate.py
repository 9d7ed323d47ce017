"""Compare the legacy tables with what the migration made of them, table by table, row by row."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.contrib.auth import get_user_model

from medflow.access.models import ClinicReadModel, Membership
from medflow.clinical.models import (
    ClinicalEventRecord,
    DiagnosisRecord,
    EncounterRecord,
    MedicationRecord,
    NoteRecord,
)
from medflow.labs.models import LabResultReadModel
from medflow.legacy import mapping as mp
from medflow.legacy import models as m
from medflow.legacy.migrate import ENCOUNTER_END
from medflow.patients.models import PatientReadModel


@dataclass(frozen=True)
class Mismatch:
    table: str
    row_id: str
    field: str
    legacy: Any
    migrated: Any


@dataclass
class TableCount:
    legacy: int
    migrated: int
    compared: int = 0


@dataclass
class ValidationReport:
    tables: dict[str, TableCount] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and all(t.legacy == t.migrated for t in self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tables": {name: t.__dict__ for name, t in self.tables.items()},
            "mismatches": [{**x.__dict__, "legacy": _plain(x.legacy), "migrated": _plain(x.migrated)}
                           for x in self.mismatches],
        }

    def text(self) -> str:
        lines = [f"{'table':26} {'legacy':>8} {'migrated':>9} {'compared':>9}"]
        for name, t in self.tables.items():
            flag = "" if t.legacy == t.migrated else "  <- count differs"
            lines.append(f"{name:26} {t.legacy:>8} {t.migrated:>9} {t.compared:>9}{flag}")
        for x in self.mismatches[:200]:
            lines.append(f"MISMATCH {x.table} {x.row_id} {x.field}: legacy {_plain(x.legacy)!r},"
                         f" migrated {_plain(x.migrated)!r}")
        if len(self.mismatches) > 200:
            lines.append(f"... and {len(self.mismatches) - 200} more mismatches")
        lines.append("OK: no mismatch" if self.ok else f"FAILED: {len(self.mismatches)} mismatches")
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value if value is None or isinstance(value, int | float | str | bool) else str(value)


def _day(value: Any) -> date | None:
    if value in (None, ""):
        return None
    return date.fromisoformat(value) if isinstance(value, str) else mp.as_date(value)


class _Checker:
    def __init__(self) -> None:
        self.report = ValidationReport()
        self.mapped: dict[str, dict[str, Any]] = {}
        self.users = dict(get_user_model().objects.filter(username__startswith="legacy-").values_list(
            "username", "pk"))

    def agg(self, table: str, legacy_id: str | None) -> Any:
        """Return the aggregate a legacy row became (mapped, else the derived id)."""
        if legacy_id is None:
            return None
        if table not in self.mapped:
            self.mapped[table] = dict(m.MigrationMap.objects.filter(legacy_table=table).values_list(
                "legacy_id", "aggregate_id"))
        return self.mapped[table].get(legacy_id) or mp.aggregate_id(table, legacy_id)

    def user_pk(self, provider_id: str | None) -> int | None:
        return self.users.get(mp.provider_username(provider_id) if provider_id else mp.IMPORT_USERNAME)

    def table(self, name: str, rows: Iterable[Any], targets: Callable[[list], dict],
              compare: Callable[[Any, Any, Any], Iterable[tuple[str, Any, Any]]]) -> None:
        rows = list(rows)
        mapping = {legacy_id: (aggregate_id, event_id) for legacy_id, aggregate_id, event_id in
                   m.MigrationMap.objects.filter(legacy_table=name).values_list(
                       "legacy_id", "aggregate_id", "event_id")}
        count = self.report.tables[name] = TableCount(len(rows), 0)
        found = targets([mapping[r.id] for r in rows if r.id in mapping])
        for row in rows:
            if row.id not in mapping:
                self.report.mismatches.append(Mismatch(name, row.id, "*", "row", "not migrated"))
                continue
            count.migrated += 1
            target = found.get(mapping[row.id][0]) or found.get(mapping[row.id][1])
            if target is None:
                self.report.mismatches.append(Mismatch(name, row.id, "*", "row", "missing in read model"))
                continue
            count.compared += 1
            for field_name, legacy, migrated in compare(row, target, mapping[row.id]):
                if legacy != migrated:
                    self.report.mismatches.append(Mismatch(name, row.id, field_name, legacy, migrated))

    def run(self) -> ValidationReport:
        by_agg = lambda model: lambda ids: model.objects.in_bulk([a for a, _ in ids])  # noqa: E731
        self.table("legacy_clinics", m.Clinic.objects.all(), by_agg(ClinicReadModel), self.clinic)
        self.table("legacy_patients", m.Patient.objects.all(), by_agg(PatientReadModel), self.patient)
        self.table("legacy_providers", m.Provider.objects.all(), lambda ids: {
            a: True for a, _ in ids}, self.provider)
        self.table("legacy_encounters", m.Encounter.objects.all(), by_agg(EncounterRecord),
                   self.encounter)
        self.table(ENCOUNTER_END, m.Encounter.objects.filter(stop__isnull=False),
                   by_agg(EncounterRecord), self.encounter_end)
        self.table("legacy_diagnoses", m.Diagnosis.objects.all(), by_agg(DiagnosisRecord),
                   self.diagnosis)
        self.table("legacy_clinical_notes", m.ClinicalNote.objects.all(), by_agg(NoteRecord), self.note)
        self.table("legacy_lab_results", m.LabResult.objects.all(), by_agg(LabResultReadModel),
                   self.lab_result)
        self.table("legacy_medications", m.Medication.objects.all(), by_agg(MedicationRecord),
                   self.medication)
        self.table("legacy_vital_signs", m.VitalSigns.objects.all(),
                   lambda ids: ClinicalEventRecord.objects.in_bulk([e for _, e in ids if e]),
                   self.vital_signs)
        return self.report

    # Field by field ---------------------------------------------------------------------------

    def clinic(self, row, target, _ids):
        yield "name", row.name.strip(), target.name

    def patient(self, row, target, _ids):
        data = target.current_data
        expected = mp.patient_fields(row)
        yield "mrn", row.mrn.strip(), target.mrn
        yield "first_name", row.first_name.strip(), target.given_names
        yield "last_name", row.last_name.strip(), target.family_name
        yield "birth_date", row.birth_date, target.birth_date
        yield "gender", expected["sex"], data.get("sex")
        yield "clinic_id", str(self.agg("legacy_clinics", row.clinic_id or mp.DEFAULT_CLINIC)), \
            str(target.clinic_id)
        address = data.get("address") or {}
        yield "address", [row.address] if row.address else [], address.get("lines", [])
        yield "city", row.city, address.get("city", "")
        yield "zip", row.zip, address.get("postal_code", "")
        yield "phone", row.phone or None, data.get("phone")

    def provider(self, row, _target, _ids):
        pk = self.user_pk(row.id)
        yield "user", mp.provider_username(row.id), mp.provider_username(row.id) if pk else None
        if row.clinic_id and pk:
            clinic_id = mp.aggregate_id("legacy_clinics", row.clinic_id)
            role = Membership.objects.filter(clinic_id=clinic_id, user_id=pk).values_list(
                "role", flat=True).first()
            yield "clinic", "doctor", role

    def encounter(self, row, target, _ids):
        yield "patient_id", self.agg("legacy_patients", row.patient_id), target.patient_id
        yield "start", row.start, target.started_at
        if row.provider_id:  # rows naming no provider went to the import account (or a user)
            yield "provider_id", self.user_pk(row.provider_id), target.provider_id
        yield "encounter_class", mp.ENCOUNTER_KINDS.get(row.encounter_class.lower(), "ambulatory"), \
            target.state.get("kind")
        yield "reason", mp.encounter_reason(row), target.state.get("reason")
        yield "status", "finished" if row.stop else "in_progress", target.status

    def encounter_end(self, row, target, _ids):
        yield "stop", row.stop, target.ended_at

    def diagnosis(self, row, target, _ids):
        state = target.state
        yield "patient_id", self.agg("legacy_patients", row.patient_id), target.patient_id
        yield "code", row.code, target.code
        yield "description", row.description[:200], state.get("display")
        yield "start", row.start, _day(state.get("onset_date"))
        yield "stop", row.stop, _day(state.get("resolved_on"))
        yield "encounter_id", str(self.agg("legacy_encounters", row.encounter_id)) \
            if row.encounter_id else None, state.get("encounter_id")

    def note(self, row, target, _ids):
        yield "patient_id", self.agg("legacy_patients", row.patient_id), target.patient_id
        yield "text", row.text.strip(), (target.state.get("subjective") or "").strip()
        yield "status", "signed", target.status

    def lab_result(self, row, target, _ids):
        yield "patient_id", self.agg("legacy_patients", row.patient_id), target.patient_id
        yield "loinc_code", row.loinc_code, target.loinc_code
        yield "display", row.display, target.display
        yield "effective_at", row.effective_at, target.effective_at
        yield "value", row.value, target.value
        if row.value is None:
            yield "value_text", row.value_text, target.value_text
        yield "unit", row.unit or None, target.unit

    def medication(self, row, target, _ids):
        fields = mp.medication_fields(row)
        yield "patient_id", self.agg("legacy_patients", row.patient_id), target.patient_id
        yield "code", row.code, target.drug_code
        yield "description", fields["drug_name"], target.drug_name
        yield "status", "discontinued" if row.stop else "active", target.status

    def vital_signs(self, row, target, _ids):
        yield "patient_id", self.agg("legacy_patients", row.patient_id), target.patient_id
        yield "measured_at", row.measured_at, target.effective_at
        values = mp.vital_values(row)
        for name in mp.MEASURES:
            yield name, values.get(name), target.data.get(name)


def validate() -> ValidationReport:
    """Compare every legacy table with its migrated records; the report says what differs."""
    return _Checker().run()
