"""Read models of the patients context, kept by inline projections (projections.py)."""

from django.db import models


class PatientReadModel(models.Model):
    """The seeds' `patient_read_model` (id, current_data, last_updated, version) plus the columns
    that search and clinic scoping need."""

    id = models.UUIDField(primary_key=True)
    clinic_id = models.UUIDField()
    mrn = models.CharField(max_length=40)
    family_name = models.CharField(max_length=200)
    given_names = models.CharField(max_length=200)
    # Lower-cased "given family" for case-insensitive search on both backends.
    search_name = models.CharField(max_length=401)
    birth_date = models.DateField(null=True)
    archived = models.BooleanField(default=False)
    # A forgotten patient keeps a tombstone row without personal data (the record answers 410).
    forgotten = models.BooleanField(default=False)
    current_data = models.JSONField()
    last_updated = models.DateTimeField()
    version = models.IntegerField()

    class Meta:
        db_table = "patient_read_model"
        constraints = [
            # MRN unique per clinic; the service checks first, this catches the race.
            models.UniqueConstraint(fields=["clinic_id", "mrn"], name="patient_mrn_per_clinic"),
        ]
        indexes = [
            models.Index(fields=["clinic_id", "family_name"], name="patient_rm_clinic_name_idx"),
            models.Index(fields=["id", "last_updated"], name="patient_rm_id_time_idx"),
        ]
