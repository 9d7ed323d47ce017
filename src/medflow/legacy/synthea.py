"""Load a Synthea CSV export into the legacy tables, as the old system would have held it.

Liberal in what it reads: headers in any case, columns in any order, optional columns and files
may be missing, and older Synthea names (DATE for START, ID for Id) are accepted. A required
column missing, or a value that cannot be read, stops the load with the file, line and column;
nothing is written then (the whole load is one transaction).
"""

import csv
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from django.db import transaction
from tqdm import tqdm

from medflow.legacy import models as m

NAMESPACE = uuid.UUID("3f0d9f7e-4a53-4c55-b1a9-5b2a0d6c7e41")

# LOINC code of a vital sign -> column of legacy_vital_signs.
VITAL_CODES = {
    "8480-6": "systolic", "8462-4": "diastolic", "8867-4": "heart_rate",
    "9279-1": "respiratory_rate", "8310-5": "temperature_c", "59408-5": "spo2", "2708-6": "spo2",
    "29463-7": "weight_kg", "8302-2": "height_cm",
}

# column -> names it has had in Synthea exports (upper case).
ALIASES = {
    "ID": ("ID",),
    "START": ("START", "DATE", "START_DATE"),
    "STOP": ("STOP", "END", "STOP_DATE"),
    "DATE": ("DATE", "START"),
    "VALUE": ("VALUE",),
    "UNITS": ("UNITS", "UNIT"),
    "TEXT": ("TEXT", "NOTE", "NOTE_TEXT", "DESCRIPTION"),
}


class LoadError(Exception):
    """A file that cannot be loaded: its message names the file, line and column."""


@dataclass
class Table:
    """One CSV file opened with its header mapped to canonical upper-case names."""

    path: Path
    columns: dict[str, str]  # canonical name -> header as written

    @property
    def name(self) -> str:
        return self.path.name

    def column(self, canonical: str) -> str | None:
        for alias in ALIASES.get(canonical, (canonical,)):
            if alias in self.columns:
                return alias
        return None

    def require(self, *names: str) -> None:
        for name in names:
            if self.column(name) is None:
                raise LoadError(f"{self.name}: required column {name} is missing"
                                f" (columns: {', '.join(self.columns.values())})")

    def rows(self) -> Iterator["Row"]:
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            positions = {h.strip().upper(): i for i, h in enumerate(header or [])}
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                yield Row(self, reader.line_num, values, positions)


@dataclass
class Row:
    table: Table
    line: int
    values: list[str]
    positions: dict[str, int]

    def error(self, canonical: str, message: str) -> LoadError:
        column = self.table.column(canonical) or canonical
        header = self.table.columns.get(column, column)
        return LoadError(f"{self.table.name} line {self.line}, column {header}: {message}")

    def get(self, canonical: str) -> str:
        column = self.table.column(canonical)
        if column is None:
            return ""
        index = self.positions[column]
        return self.values[index].strip() if index < len(self.values) else ""

    def required(self, canonical: str) -> str:
        value = self.get(canonical)
        if not value:
            raise self.error(canonical, "a value is required")
        return value

    def when(self, canonical: str, *, required: bool = True) -> datetime | None:
        text = self.required(canonical) if required else self.get(canonical)
        if not text:
            return None
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise self.error(canonical, f"{text!r} is not a date or time") from None
        if len(text) == 10:  # a date alone: noon, so that no time zone moves it a day
            value = value.replace(hour=12)
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def day(self, canonical: str, *, required: bool = True) -> date | None:
        value = self.when(canonical, required=required)
        return value.date() if value else None

    def number(self, canonical: str) -> float | None:
        text = self.get(canonical)
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise self.error(canonical, f"{text!r} is not a number") from None


def open_table(folder: Path, stem: str, *, required: bool = False) -> Table | None:
    """Open `stem`.csv in `folder` (any case); None when it is optional and absent."""
    found = next((p for p in sorted(folder.iterdir()) if p.name.lower() == f"{stem}.csv"), None)
    if found is None:
        if required:
            raise LoadError(f"{stem}.csv is missing from {folder}")
        return None
    with found.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise LoadError(f"{found.name}: the file has no header line")
    return Table(found, {h.strip().upper(): h.strip() for h in header})


@dataclass
class LoadSummary:
    counts: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)


def _id(*parts: Any) -> str:
    return str(uuid.uuid5(NAMESPACE, ":".join(str(p) for p in parts)))


class _Reader:
    """Read every file into unsaved model instances, checking as it goes."""

    def __init__(self, folder: Path, scale: int, progress: bool) -> None:
        self.folder, self.scale, self.progress = folder, max(1, scale), progress
        self.summary = LoadSummary()
        self.rows: dict[type, list] = defaultdict(list)
        self.patients: set[str] = set()
        self.encounters: dict[str, str] = {}  # encounter id -> patient id
        self.clinics: set[str] = set()
        self.providers: set[str] = set()

    def clone(self, source_id: str, copy: int) -> str:
        """Return the id of copy number `copy` of a patient-owned row (copy 0 is the row)."""
        return source_id if copy == 0 else _id("clone", source_id, copy)

    def each(self, table: Table) -> Iterator[Row]:
        rows = table.rows()
        if self.progress:
            rows = tqdm(rows, desc=f"load {table.name}", unit=" rows", leave=False)
        yield from rows

    def read(self) -> None:
        folder = self.folder
        if not folder.is_dir():
            raise LoadError(f"{folder} is not a folder of Synthea CSV files")
        patients = open_table(folder, "patients", required=True)
        self.read_organizations(open_table(folder, "organizations"))
        self.read_providers(open_table(folder, "providers"))
        encounters = open_table(folder, "encounters")
        first_clinic = self.first_clinics(encounters) if encounters else {}
        self.read_patients(patients, first_clinic)
        if encounters:
            self.read_encounters(encounters)
        self.read_conditions(open_table(folder, "conditions"))
        self.read_medications(open_table(folder, "medications"))
        self.read_observations(open_table(folder, "observations"))
        self.read_notes(open_table(folder, "notes"))

    def read_organizations(self, table: Table | None) -> None:
        if table is None:
            return
        table.require("ID", "NAME")
        for row in self.each(table):
            self.clinics.add(row.required("ID"))
            self.rows[m.Clinic].append(m.Clinic(
                id=row.required("ID"), name=row.required("NAME")[:200],
                address=row.get("ADDRESS")[:200], city=row.get("CITY")[:100],
                state=row.get("STATE")[:100], zip=row.get("ZIP")[:20], phone=row.get("PHONE")[:40]))

    def read_providers(self, table: Table | None) -> None:
        if table is None:
            return
        table.require("ID", "NAME")
        for row in self.each(table):
            clinic = row.get("ORGANIZATION") or None
            if clinic is not None and clinic not in self.clinics:
                raise row.error("ORGANIZATION", f"unknown organization {clinic}")
            self.providers.add(row.required("ID"))
            self.rows[m.Provider].append(m.Provider(
                id=row.required("ID"), clinic_id=clinic, name=row.required("NAME")[:200],
                gender=row.get("GENDER")[:10], speciality=row.get("SPECIALITY")[:100]))

    def first_clinics(self, table: Table) -> dict[str, str]:
        """Return each patient's organization: the one of their first encounter."""
        table.require("ID", "START", "PATIENT")
        first: dict[str, tuple[str, str]] = {}
        for row in table.rows():
            organization = row.get("ORGANIZATION")
            if organization and organization in self.clinics:
                start, patient = row.get("START"), row.get("PATIENT")
                if patient not in first or start < first[patient][0]:
                    first[patient] = (start, organization)
        return {patient: organization for patient, (_, organization) in first.items()}

    def read_patients(self, table: Table, first_clinic: dict[str, str]) -> None:
        table.require("ID", "BIRTHDATE", "FIRST", "LAST")
        for row in self.each(table):
            source = row.required("ID")
            birth, death = row.day("BIRTHDATE"), row.day("DEATHDATE", required=False)
            for copy in range(self.scale):
                patient_id = self.clone(source, copy)
                self.patients.add(patient_id)
                self.rows[m.Patient].append(m.Patient(
                    id=patient_id, clinic_id=first_clinic.get(source), mrn=patient_id[:40],
                    prefix=row.get("PREFIX")[:20], first_name=row.required("FIRST")[:200],
                    last_name=row.required("LAST")[:200], suffix=row.get("SUFFIX")[:20],
                    birth_date=birth, death_date=death, gender=row.get("GENDER")[:10],
                    address=row.get("ADDRESS")[:200], city=row.get("CITY")[:100],
                    state=row.get("STATE")[:100], zip=row.get("ZIP")[:20],
                    phone=row.get("PHONE")[:40]))

    def patient_of(self, row: Row, copy: int) -> str:
        source = row.required("PATIENT")
        patient = self.clone(source, copy)
        if patient not in self.patients:
            raise row.error("PATIENT", f"unknown patient {source}")
        return patient

    def encounter_of(self, row: Row, copy: int, patient: str) -> str | None:
        source = row.get("ENCOUNTER")
        if not source:
            return None
        encounter = self.clone(source, copy)
        if self.encounters.get(encounter) != patient:
            raise row.error("ENCOUNTER", f"unknown encounter {source} of this patient")
        return encounter

    def read_encounters(self, table: Table) -> None:
        for row in self.each(table):
            start, stop = row.when("START"), row.when("STOP", required=False)
            clinic = row.get("ORGANIZATION") or None
            provider = row.get("PROVIDER") or None
            clinic = clinic if clinic in self.clinics else None
            provider = provider if provider in self.providers else None
            for copy in range(self.scale):
                patient = self.patient_of(row, copy)
                encounter_id = self.clone(row.required("ID"), copy)
                self.encounters[encounter_id] = patient
                self.rows[m.Encounter].append(m.Encounter(
                    id=encounter_id, patient_id=patient, clinic_id=clinic, provider_id=provider,
                    start=start, stop=stop, encounter_class=row.get("ENCOUNTERCLASS")[:30],
                    code=row.get("CODE")[:30], description=row.get("DESCRIPTION")[:300],
                    reason_code=row.get("REASONCODE")[:30],
                    reason_description=row.get("REASONDESCRIPTION")[:300]))

    def read_conditions(self, table: Table | None) -> None:
        if table is None:
            return
        table.require("START", "PATIENT", "CODE", "DESCRIPTION")
        seen: Counter = Counter()
        for row in self.each(table):
            start, stop = row.day("START"), row.day("STOP", required=False)
            code = row.required("CODE")
            for copy in range(self.scale):
                patient = self.patient_of(row, copy)
                encounter = self.encounter_of(row, copy, patient)
                key = (patient, encounter, code, start)
                seen[key] += 1
                self.rows[m.Diagnosis].append(m.Diagnosis(
                    id=_id("condition", *key, seen[key]), patient_id=patient, encounter_id=encounter,
                    start=start, stop=stop, code=code[:40],
                    description=row.required("DESCRIPTION")[:300]))

    def read_medications(self, table: Table | None) -> None:
        if table is None:
            return
        table.require("START", "PATIENT", "CODE", "DESCRIPTION")
        seen: Counter = Counter()
        for row in self.each(table):
            start, stop = row.when("START"), row.when("STOP", required=False)
            code = row.required("CODE")
            for copy in range(self.scale):
                patient = self.patient_of(row, copy)
                encounter = self.encounter_of(row, copy, patient)
                key = (patient, encounter, code, start.isoformat())
                seen[key] += 1
                self.rows[m.Medication].append(m.Medication(
                    id=_id("medication", *key, seen[key]), patient_id=patient,
                    encounter_id=encounter, start=start, stop=stop, code=code[:20],
                    description=row.required("DESCRIPTION")[:300],
                    reason_code=row.get("REASONCODE")[:30],
                    reason_description=row.get("REASONDESCRIPTION")[:300]))

    def read_observations(self, table: Table | None) -> None:
        if table is None:
            return
        table.require("DATE", "PATIENT", "CODE", "VALUE")
        has_category = table.column("CATEGORY") is not None
        vitals: dict[tuple, m.VitalSigns] = {}
        seen: Counter = Counter()
        for row in self.each(table):
            code = row.required("CODE")
            category = row.get("CATEGORY").lower()
            if not has_category:  # older exports: tell vitals by their codes
                category = "vital-signs" if code in VITAL_CODES else "laboratory"
            if category not in ("vital-signs", "laboratory"):
                self.summary.skipped[f"observations ({category or 'no category'})"] += 1
                continue
            if category == "vital-signs" and code not in VITAL_CODES:
                self.summary.skipped[f"observations (vital sign {code})"] += 1
                continue
            measured = row.when("DATE")
            numeric = row.get("TYPE").lower() in ("", "numeric")
            value = row.number("VALUE") if numeric else None
            if category == "vital-signs" and value is None:
                raise row.error("VALUE", "a vital sign needs a number")
            for copy in range(self.scale):
                patient = self.patient_of(row, copy)
                encounter = self.encounter_of(row, copy, patient)
                if category == "vital-signs":
                    key = (patient, encounter, measured.isoformat())
                    if key not in vitals:
                        vitals[key] = m.VitalSigns(id=_id("vitals", *key), patient_id=patient,
                                                   encounter_id=encounter, measured_at=measured)
                        self.rows[m.VitalSigns].append(vitals[key])
                    setattr(vitals[key], VITAL_CODES[code], value)
                    continue
                key = (patient, encounter, measured.isoformat(), code)
                seen[key] += 1
                self.rows[m.LabResult].append(m.LabResult(
                    id=_id("lab", *key, seen[key]), patient_id=patient, encounter_id=encounter,
                    effective_at=measured, loinc_code=code[:20],
                    display=(row.get("DESCRIPTION") or code)[:300], value=value,
                    value_text="" if numeric else row.required("VALUE")[:300],
                    unit=row.get("UNITS")[:40]))

    def read_notes(self, table: Table | None) -> None:
        if table is None:
            return
        table.require("DATE", "PATIENT", "TEXT")
        for row in self.each(table):
            written = row.when("DATE")
            provider = row.get("PROVIDER") or None
            for copy in range(self.scale):
                patient = self.patient_of(row, copy)
                encounter = self.encounter_of(row, copy, patient)
                source = row.get("ID") or _id("note", patient, encounter, written.isoformat())
                self.rows[m.ClinicalNote].append(m.ClinicalNote(
                    id=self.clone(source, copy) if row.get("ID") else source, patient_id=patient,
                    encounter_id=encounter,
                    provider_id=provider if provider in self.providers else None,
                    written_at=written, text=row.required("TEXT")))


def load_synthea(folder: Path | str, *, scale: int = 1, progress: bool = False) -> LoadSummary:
    """Load a Synthea CSV export into the legacy tables; rows already there are left alone.

    `scale` > 1 loads that many copies of every patient (with new ids), for benchmarks.
    """
    reader = _Reader(Path(folder), scale, progress)
    reader.read()
    with transaction.atomic():
        for model in m.LEGACY_MODELS:
            rows = reader.rows.get(model, [])
            existing = set(model.objects.values_list("id", flat=True))
            new = [r for r in rows if r.id not in existing]
            model.objects.bulk_create(new, batch_size=1000)
            reader.summary.counts[model._meta.db_table] = len(new)
    return reader.summary
