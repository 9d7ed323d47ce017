"""Read models of the work context, kept by inline projections (projections.py)."""

from django.db import models


class TaskReadModel(models.Model):
    """One row per task: the work queues read this."""

    id = models.UUIDField(primary_key=True)
    clinic_id = models.UUIDField()
    assignee_id = models.IntegerField()
    title = models.CharField(max_length=200)
    details = models.TextField(blank=True)
    priority = models.CharField(max_length=10)
    # 0 = urgent ... 3 = low, so that one index serves "urgent first, then soonest due".
    priority_rank = models.SmallIntegerField()
    due_at = models.DateTimeField(null=True)
    patient_id = models.UUIDField(null=True)
    source = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10)  # pending | completed
    assigned_at = models.DateTimeField()
    assigned_by = models.IntegerField(null=True)
    completed_at = models.DateTimeField(null=True)
    completed_by = models.IntegerField(null=True)
    completion_note = models.TextField(blank=True)
    updated_at = models.DateTimeField()
    version = models.IntegerField()

    class Meta:
        db_table = "task_read_model"
        indexes = [
            models.Index(fields=["assignee_id", "status", "priority_rank", "due_at"],
                         name="task_rm_queue_idx"),
            models.Index(fields=["clinic_id", "status"], name="task_rm_clinic_status_idx"),
        ]


class AlertReadModel(models.Model):
    """One row per alert."""

    id = models.UUIDField(primary_key=True)
    clinic_id = models.UUIDField()
    patient_id = models.UUIDField(null=True)
    severity = models.CharField(max_length=10)
    severity_rank = models.SmallIntegerField()  # 0 = critical
    message = models.CharField(max_length=1000)
    source = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=15)  # unacknowledged | acknowledged
    raised_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True)
    acknowledged_by = models.IntegerField(null=True)
    acknowledgement_note = models.TextField(blank=True)
    version = models.IntegerField()

    class Meta:
        db_table = "alert_read_model"
        indexes = [
            models.Index(fields=["clinic_id", "status", "severity_rank", "raised_at"],
                         name="alert_rm_clinic_queue_idx"),
            models.Index(fields=["patient_id", "raised_at"], name="alert_rm_patient_time_idx"),
        ]
