"""The old CRUD system's tables, as such systems have them: rows edited in place, ordinary foreign
keys, an `updated_at` on every row. Plus the migration's own bookkeeping tables.

Primary keys are text: the Synthea ids where the export has them, ids derived from the row
otherwise, and new uuids for rows the old application (or dual-write) creates.
"""

import uuid

from django.db import models
from django.utils import timezone


def new_id() -> str:
    """Return a fresh legacy row id."""
    return str(uuid.uuid4())


class LegacyRow(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id)
    # The old system stamped every write; `medflow legacy sync` reads rows by it.
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        abstract = True


class Clinic(LegacyRow):
    """An organization of the export: becomes a MedFlow clinic."""

    name = models.CharField(max_length=200)
    address = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=100, blank=True)
    zip = models.CharField(max_length=20, blank=True)
    phone = models.CharField(max_length=40, blank=True)

    class Meta:
        db_table = "legacy_clinics"


class Provider(LegacyRow):
    clinic = models.ForeignKey(Clinic, null=True, on_delete=models.SET_NULL, db_constraint=False)
    name = models.CharField(max_length=200)
    gender = models.CharField(max_length=10, blank=True)
    speciality = models.CharField(max_length=100, blank=True)

    class Meta:
        db_table = "legacy_providers"


class Patient(LegacyRow):
    clinic = models.ForeignKey(Clinic, null=True, on_delete=models.SET_NULL, db_constraint=False)
    mrn = models.CharField(max_length=40)
    prefix = models.CharField(max_length=20, blank=True)
    first_name = models.CharField(max_length=200)
    last_name = models.CharField(max_length=200)
    suffix = models.CharField(max_length=20, blank=True)
    birth_date = models.DateField()
    death_date = models.DateField(null=True, blank=True)
    gender = models.CharField(max_length=10, blank=True)
    address = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=100, blank=True)
    zip = models.CharField(max_length=20, blank=True)
    phone = models.CharField(max_length=40, blank=True)

    class Meta:
        db_table = "legacy_patients"


class Encounter(LegacyRow):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, db_constraint=False)
    clinic = models.ForeignKey(Clinic, null=True, on_delete=models.SET_NULL, db_constraint=False)
    provider = models.ForeignKey(Provider, null=True, on_delete=models.SET_NULL, db_constraint=False)
    start = models.DateTimeField()
    stop = models.DateTimeField(null=True, blank=True)
    encounter_class = models.CharField(max_length=30, blank=True)
    code = models.CharField(max_length=30, blank=True)
    description = models.CharField(max_length=300, blank=True)
    reason_code = models.CharField(max_length=30, blank=True)
    reason_description = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "legacy_encounters"
        # The migration reads the table in this order, a page at a time.
        indexes = [models.Index(fields=["start", "id"], name="legacy_enc_start_idx")]


class EncounterRow(LegacyRow):
    """A clinical row about a patient, recorded during an encounter or outside one."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, db_constraint=False)
    encounter = models.ForeignKey(Encounter, null=True, on_delete=models.SET_NULL, db_constraint=False)

    class Meta:
        abstract = True


class Diagnosis(EncounterRow):
    start = models.DateField()
    stop = models.DateField(null=True, blank=True)
    code = models.CharField(max_length=40)
    description = models.CharField(max_length=300)

    class Meta:
        db_table = "legacy_diagnoses"
        # The migration reads the table in this order, a page at a time.
        indexes = [models.Index(fields=["start", "id"], name="legacy_diag_start_idx")]


class Medication(EncounterRow):
    start = models.DateTimeField()
    stop = models.DateTimeField(null=True, blank=True)
    code = models.CharField(max_length=20)
    description = models.CharField(max_length=300)
    reason_code = models.CharField(max_length=30, blank=True)
    reason_description = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "legacy_medications"
        # The migration reads the table in this order, a page at a time.
        indexes = [models.Index(fields=["start", "id"], name="legacy_med_start_idx")]


class VitalSigns(EncounterRow):
    """One set of vital signs measured together (one row, a column per measure)."""

    measured_at = models.DateTimeField()
    systolic = models.FloatField(null=True, blank=True)
    diastolic = models.FloatField(null=True, blank=True)
    heart_rate = models.FloatField(null=True, blank=True)
    respiratory_rate = models.FloatField(null=True, blank=True)
    temperature_c = models.FloatField(null=True, blank=True)
    spo2 = models.FloatField(null=True, blank=True)
    weight_kg = models.FloatField(null=True, blank=True)
    height_cm = models.FloatField(null=True, blank=True)

    class Meta:
        db_table = "legacy_vital_signs"
        # The migration reads the table in this order, a page at a time.
        indexes = [models.Index(fields=["measured_at", "id"], name="legacy_vitals_time_idx")]


class LabResult(EncounterRow):
    effective_at = models.DateTimeField()
    loinc_code = models.CharField(max_length=20)
    display = models.CharField(max_length=300)
    value = models.FloatField(null=True, blank=True)
    value_text = models.CharField(max_length=300, blank=True)
    unit = models.CharField(max_length=40, blank=True)

    class Meta:
        db_table = "legacy_lab_results"
        # The migration reads the table in this order, a page at a time. The results of one order
        # (a patient's at one time) come together, so that at most one order spans two pages,
        # even where many patients' results share a time.
        indexes = [models.Index(fields=["effective_at", "patient", "id"],
                                name="legacy_lab_page_idx")]


class ClinicalNote(EncounterRow):
    provider = models.ForeignKey(Provider, null=True, on_delete=models.SET_NULL, db_constraint=False)
    written_at = models.DateTimeField()
    text = models.TextField()

    class Meta:
        db_table = "legacy_clinical_notes"
        # The migration reads the table in this order, a page at a time.
        indexes = [models.Index(fields=["written_at", "id"], name="legacy_note_time_idx")]


class MigrationMap(models.Model):
    """Which aggregate (and event) a legacy row became; written in the same transaction."""

    legacy_table = models.CharField(max_length=60)
    legacy_id = models.CharField(max_length=64)
    aggregate_id = models.UUIDField()
    event_id = models.UUIDField(null=True)
    migrated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "legacy_migration_map"
        constraints = [models.UniqueConstraint(fields=["legacy_table", "legacy_id"],
                                               name="legacy_map_row_once")]


class State(models.Model):
    """Key/value state of the migration: last sync time, cutover position."""

    key = models.CharField(primary_key=True, max_length=60)
    value = models.TextField()

    class Meta:
        db_table = "legacy_state"


# The old system's tables, parents first (load, backup, archive, cutover use this order).
LEGACY_MODELS = (Clinic, Provider, Patient, Encounter, Diagnosis, Medication, VitalSigns, LabResult,
                 ClinicalNote)
