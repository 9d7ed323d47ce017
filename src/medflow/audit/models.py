"""The access log and the head of its hash chain."""

from django.db import models


class AccessLogEntry(models.Model):
    """Who read which patient's data, when, how, and why; chained to the entry before it."""

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField()
    user_id = models.IntegerField(null=True)
    username = models.CharField(max_length=150)
    role = models.CharField(max_length=20, blank=True)
    clinic_id = models.UUIDField(null=True)
    patient_id = models.UUIDField()
    action = models.CharField(max_length=300)
    request_id = models.CharField(max_length=100, blank=True)
    client_ip = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    break_glass = models.BooleanField(default=False)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "access_log"
        indexes = [models.Index(fields=["patient_id", "at"], name="access_log_patient_time_idx")]


class ChainHead(models.Model):
    """One row: the hash of the newest entry. Its row lock serialises appends to the chain."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    hash = models.CharField(max_length=64)
    count = models.BigIntegerField(default=0)

    class Meta:
        db_table = "access_log_head"
