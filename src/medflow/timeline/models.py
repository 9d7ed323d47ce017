"""The patient timeline read model."""

from django.db import models


class TimelineEntry(models.Model):
    """One event about a patient, with who, when and why, for the timeline."""

    position = models.BigIntegerField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    patient_id = models.UUIDField()
    aggregate_id = models.UUIDField()
    aggregate_type = models.CharField(max_length=100)
    event_type = models.CharField(max_length=100)
    version = models.IntegerField()
    kind = models.CharField(max_length=40)
    summary = models.CharField(max_length=300)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    username = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=20, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField()

    class Meta:
        db_table = "patient_timeline"
        indexes = [
            models.Index(fields=["patient_id", "-occurred_at"], name="timeline_patient_time_idx"),
            models.Index(fields=["patient_id", "kind"], name="timeline_patient_kind_idx"),
        ]
