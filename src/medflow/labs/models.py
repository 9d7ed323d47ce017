"""Read models of the labs context, kept by inline projections (projections.py)."""

from django.db import models


class LabOrderReadModel(models.Model):
    """One row per lab order, for a patient's order list."""

    id = models.UUIDField(primary_key=True)
    patient_id = models.UUIDField()
    clinic_id = models.UUIDField()
    ordering_provider_id = models.IntegerField()
    tests = models.JSONField()
    priority = models.CharField(max_length=10)
    reason = models.TextField(blank=True)
    encounter_id = models.UUIDField(null=True)
    # placed -> resulted (a result stands) ; placed -> cancelled
    status = models.CharField(max_length=10)
    result_count = models.IntegerField(default=0)
    placed_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    version = models.IntegerField()

    class Meta:
        db_table = "lab_orders_read_model"
        indexes = [
            models.Index(fields=["patient_id", "placed_at"], name="lab_orders_patient_time_idx"),
        ]


class LabResultReadModel(models.Model):
    """The seeds' `lab_results_read_model`: one row per result, in its latest form."""

    id = models.UUIDField(primary_key=True)
    # The seeds' foreign key to the patient (deferrable, so a rebuild can swap rows in one go).
    # No index of its own: the (patient_id, time) index serves every lookup by patient, and a
    # second one cost every insert.
    patient = models.ForeignKey(
        "patients.PatientReadModel", on_delete=models.DO_NOTHING, related_name="+",
        db_column="patient_id", db_index=False,
    )
    order_id = models.UUIDField()
    loinc_code = models.CharField(max_length=10)
    display = models.CharField(max_length=300)
    value = models.FloatField(null=True)
    # NULL, not "": absent differs from empty for a result's text value, unit and flag.
    value_text = models.CharField(max_length=500, null=True)  # noqa: DJ001
    unit = models.CharField(max_length=40, null=True)  # noqa: DJ001
    reference_low = models.FloatField(null=True)
    reference_high = models.FloatField(null=True)
    critical_low = models.FloatField(null=True)
    critical_high = models.FloatField(null=True)
    abnormal_flag = models.CharField(max_length=2, null=True)  # noqa: DJ001
    status = models.CharField(max_length=10)
    effective_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # The order's stream version after the event that last changed this result.
    version = models.IntegerField()

    class Meta:
        db_table = "lab_results_read_model"
        indexes = [
            models.Index(fields=["patient_id", "effective_at"], name="lab_results_patient_time_idx"),
            models.Index(fields=["loinc_code", "effective_at"], name="lab_results_type_time_idx"),
            # An order's results: the projection folds each event into its order's rows.
            models.Index(fields=["order_id"], name="lab_results_order_idx"),
        ]
