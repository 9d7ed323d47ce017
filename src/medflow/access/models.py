"""Read models of clinics and staff roles, and API tokens."""

from django.conf import settings
from django.db import models


class ClinicReadModel(models.Model):
    id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=200)
    code = models.CharField(max_length=40, unique=True)
    version = models.IntegerField()

    class Meta:
        db_table = "clinic_read_model"


class Membership(models.Model):
    """A person's role in one clinic (kept from StaffRoleGranted / StaffRoleRevoked)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    clinic = models.ForeignKey(ClinicReadModel, on_delete=models.CASCADE)
    role = models.CharField(max_length=20)

    class Meta:
        db_table = "staff_membership"
        constraints = [
            models.UniqueConstraint(fields=["user", "clinic"], name="membership_user_clinic"),
        ]


class ApiToken(models.Model):
    """A bearer token for programs: stored as a SHA-256 hash, revocable, expiring."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_token"


class BreakGlassGrantReadModel(models.Model):
    """A break-glass grant (from BreakGlassAccessGranted): read access outside one's clinics."""

    id = models.UUIDField(primary_key=True)
    patient_id = models.UUIDField()
    clinic_id = models.UUIDField()
    user_id = models.IntegerField()
    username = models.CharField(max_length=150)
    reason = models.CharField(max_length=500)
    granted_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "break_glass_grant"
        indexes = [models.Index(fields=["user_id", "expires_at"], name="break_glass_user_expiry")]


class ArchivedStream(models.Model):
    """A stream past its retention period, archived by `medflow retention apply`.

    Archiving keeps every event (the log is the legal record and its order is global) and drops
    what is derived and kept for speed: the stream's snapshots and cache entries. A stream that
    changes again after archiving is live again: the next `retention apply` removes its row.
    """

    aggregate_id = models.UUIDField(primary_key=True)
    aggregate_type = models.CharField(max_length=100)
    clinic_id = models.UUIDField(null=True)
    subject_id = models.UUIDField(null=True, db_index=True)
    version = models.IntegerField()
    last_changed = models.DateTimeField()
    retention_years = models.IntegerField()
    archived_at = models.DateTimeField()

    class Meta:
        db_table = "retention_archive"
