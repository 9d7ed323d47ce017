"""Checkpoints of catch-up projections and of rebuilds in progress, and the event counts model."""

from django.db import models


class Checkpoint(models.Model):
    """How far a projection (or a rebuild) has read the global log."""

    name = models.CharField(max_length=100, primary_key=True)
    position = models.BigIntegerField(default=0)
    processed = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "projection_checkpoint"


class EventCount(models.Model):
    """How many events of each type were recorded each day (a catch-up projection)."""

    event_type = models.CharField(max_length=100)
    day = models.DateField()
    count = models.BigIntegerField(default=0)

    class Meta:
        db_table = "event_count_read_model"
        constraints = [
            models.UniqueConstraint(fields=["event_type", "day"], name="event_count_type_day"),
        ]
