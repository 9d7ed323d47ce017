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
            # MRN unique per clinic: registration relies on it (a taken MRN rolls the command back).
            models.UniqueConstraint(fields=["clinic_id", "mrn"], name="patient_mrn_per_clinic"),
        ]
        indexes = [
            models.Index(fields=["clinic_id", "family_name"], name="patient_rm_clinic_name_idx"),
            models.Index(fields=["id", "last_updated"], name="patient_rm_id_time_idx"),
        ]


class PatientNameWord(models.Model):
    """A word of some patient's unaccented name (PostgreSQL; empty on SQLite): the short list
    that typo-tolerant search compares a misspelt word with, instead of every name.

    Not a projection's read model: PostgreSQL keeps it from `patient_read_model` with triggers
    (migration 0007), so every writer of that table keeps it right, and a rebuild of the patients
    projection derives it again (namewords.refresh). A word goes when no patient's name holds it
    any more, so a forgotten patient's name leaves nothing here.
    """

    word = models.TextField(primary_key=True)

    class Meta:
        db_table = "patient_name_word"
