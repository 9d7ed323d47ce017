"""Tables of the event store. The store writes them with SQL of its own (see store.py)."""

import uuid

from django.db import models


class StoredEvent(models.Model):
    """One immutable event; the seeds' `event_store` table plus a global position."""

    position = models.BigAutoField(primary_key=True)
    id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    aggregate_id = models.UUIDField()
    aggregate_type = models.CharField(max_length=100)
    event_type = models.CharField(max_length=100)
    event_data = models.JSONField()
    metadata = models.JSONField()
    version = models.IntegerField()
    timestamp = models.DateTimeField()

    class Meta:
        db_table = "event_store"
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_id", "version"], name="event_store_aggregate_version_key"
            ),
        ]
        indexes = [
            models.Index(fields=["aggregate_type", "timestamp"], name="event_store_type_time_idx"),
            models.Index(fields=["event_type", "timestamp"], name="event_store_event_time_idx"),
            models.Index(fields=["timestamp"], name="event_store_time_idx"),
        ]


class Stream(models.Model):
    """One row per aggregate: its current version (optimistic concurrency) and clinic."""

    aggregate_id = models.UUIDField(primary_key=True)
    aggregate_type = models.CharField(max_length=100)
    version = models.IntegerField()
    clinic_id = models.UUIDField(null=True)
    # The data subject (patient) whose personal data the stream holds, if any.
    subject_id = models.UUIDField(null=True, db_index=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "streams"
        indexes = [models.Index(fields=["aggregate_type", "clinic_id"], name="streams_type_clinic_idx")]


class Snapshot(models.Model):
    """An aggregate's state at a version, so that loading needs only the newer events."""

    aggregate_id = models.UUIDField()
    aggregate_type = models.CharField(max_length=100)
    version = models.IntegerField()
    schema_version = models.IntegerField()
    state = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        db_table = "snapshots"
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_id", "version"], name="snapshots_aggregate_version_key"
            ),
        ]


class ProcessedCommand(models.Model):
    """A command id already carried out, with its result, so that a retry is a no-op."""

    command_id = models.UUIDField(primary_key=True)
    aggregate_id = models.UUIDField()
    result = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        db_table = "processed_commands"


class DataKey(models.Model):
    """A data subject's AES-256-GCM key, wrapped by a master key; emptied when forgotten."""

    subject_id = models.UUIDField(primary_key=True)
    wrapped_key = models.TextField()
    master_key_id = models.CharField(max_length=16)
    created_at = models.DateTimeField()
    destroyed_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "data_keys"
