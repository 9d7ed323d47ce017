"""Read models of the clinical context, kept by inline projections (projections.py).

`clinical_read_model` holds one row per clinical event (the log of the chart, and what `as_of`
queries replay); the other tables hold each aggregate's current state for the chart screens.
"""

from django.db import models


class ClinicalEventRecord(models.Model):
    """The seeds' `clinical_read_model`: one row per clinical event, by patient and time."""

    id = models.UUIDField(primary_key=True)  # the event id
    position = models.BigIntegerField(unique=True)
    # The seeds' foreign key to the patient (deferrable, so a rebuild can swap rows in one go).
    # No index of its own: the (patient_id, time) index serves every lookup by patient, and a
    # second one cost every insert.
    patient = models.ForeignKey(
        "patients.PatientReadModel", on_delete=models.DO_NOTHING, related_name="+",
        db_column="patient_id", db_index=False,
    )
    encounter_id = models.UUIDField(null=True)
    aggregate_id = models.UUIDField()
    aggregate_type = models.CharField(max_length=100)
    event_type = models.CharField(max_length=100)
    schema_version = models.IntegerField(default=1)
    data = models.JSONField()
    recorded_at = models.DateTimeField()
    effective_at = models.DateTimeField()
    version = models.IntegerField()

    class Meta:
        db_table = "clinical_read_model"
        indexes = [
            models.Index(fields=["patient_id", "recorded_at"], name="clinical_rm_patient_time_idx"),
            models.Index(fields=["event_type", "recorded_at"], name="clinical_rm_type_time_idx"),
            models.Index(fields=["encounter_id"], name="clinical_rm_encounter_idx"),
            # An aggregate's events by version: its first event's encounter (the projection) and
            # a version's entry (queries).
            models.Index(fields=["aggregate_id", "version"], name="clinical_rm_aggregate_idx"),
        ]


class CurrentState(models.Model):
    """An aggregate's current state (`state` is what the API shows) and the columns to filter on."""

    id = models.UUIDField(primary_key=True)
    patient_id = models.UUIDField()
    status = models.CharField(max_length=20)
    state = models.JSONField()
    version = models.IntegerField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        abstract = True


class EncounterRecord(CurrentState):
    """Encounters: in_progress or finished."""

    clinic_id = models.UUIDField()
    provider_id = models.IntegerField(null=True)
    appointment_id = models.UUIDField(null=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "clinical_encounter"
        indexes = [
            models.Index(fields=["patient_id", "started_at"], name="clinical_enc_patient_idx"),
            models.Index(fields=["provider_id", "started_at"], name="clinical_enc_provider_idx"),
            models.Index(fields=["appointment_id"], name="clinical_enc_appointment_idx"),
        ]


class DiagnosisRecord(CurrentState):
    """The problem list; `status` is the clinical status (active, remission, resolved ...)."""

    code_system = models.CharField(max_length=20)
    code = models.CharField(max_length=40)

    class Meta:
        db_table = "clinical_diagnosis"
        indexes = [
            models.Index(fields=["patient_id", "status"], name="clinical_dx_patient_idx"),
            models.Index(fields=["code_system", "code"], name="clinical_dx_code_idx"),
        ]


class AllergyRecord(CurrentState):
    """Allergies and intolerances; `status` is active, resolved, refuted or entered-in-error."""

    code_system = models.CharField(max_length=20)
    code = models.CharField(max_length=40)
    category = models.CharField(max_length=20)
    criticality = models.CharField(max_length=20, blank=True)  # empty: not assessed

    class Meta:
        db_table = "clinical_allergy"
        indexes = [
            models.Index(fields=["patient_id", "status"], name="clinical_allergy_patient_idx"),
            models.Index(fields=["code_system", "code"], name="clinical_allergy_code_idx"),
        ]


class MedicationRecord(CurrentState):
    """Prescriptions: pending, active or discontinued."""

    drug_code = models.CharField(max_length=20)
    drug_name = models.CharField(max_length=200)

    class Meta:
        db_table = "clinical_medication"
        indexes = [
            models.Index(fields=["patient_id", "status"], name="clinical_med_patient_idx"),
            models.Index(fields=["drug_code"], name="clinical_med_drug_idx"),
        ]


class NoteRecord(CurrentState):
    """SOAP notes: draft, signed or amended."""

    encounter_id = models.UUIDField(null=True)
    author_id = models.IntegerField(null=True)

    class Meta:
        db_table = "clinical_note"
        indexes = [
            models.Index(fields=["patient_id", "updated_at"], name="clinical_note_patient_idx"),
            models.Index(fields=["author_id", "status"], name="clinical_note_author_idx"),
        ]


class LatestVitalSign(models.Model):
    """The latest measured value of each vital sign of each patient."""

    patient_id = models.UUIDField()
    measure = models.CharField(max_length=30)
    value = models.FloatField()
    unit = models.CharField(max_length=20)
    measured_at = models.DateTimeField()
    event_id = models.UUIDField()
    encounter_id = models.UUIDField(null=True)

    class Meta:
        db_table = "clinical_latest_vital"
        constraints = [
            models.UniqueConstraint(fields=["patient_id", "measure"], name="clinical_latest_vital_key"),
        ]
