"""Read models of the scheduling context, kept by inline projections (projections.py)."""

from django.db import models


class AppointmentReadModel(models.Model):
    """One row per appointment, in its current state.

    It is also the table of provider bookings that the double-booking check reads: every row whose
    status is not "cancelled" holds its provider's slot [starts_at, ends_at).
    """

    id = models.UUIDField(primary_key=True)
    patient_id = models.UUIDField()
    clinic_id = models.UUIDField()
    provider_id = models.BigIntegerField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=20)
    kind = models.CharField(max_length=20)
    reason = models.TextField(blank=True, default="")
    # The aggregate's whole state (Appointment.state()), so that the projection folds events
    # exactly as the aggregate does.
    current_data = models.JSONField()
    # When the appointment was first booked and last changed (recorded times), for as_of reads.
    scheduled_at = models.DateTimeField()
    last_updated = models.DateTimeField()
    version = models.IntegerField()

    class Meta:
        db_table = "appointments"
        indexes = [
            models.Index(fields=["provider_id", "starts_at"], name="appt_provider_start_idx"),
            models.Index(fields=["patient_id", "starts_at"], name="appt_patient_start_idx"),
        ]
