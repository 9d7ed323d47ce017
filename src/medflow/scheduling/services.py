"""Application services of the scheduling context: the only writers of appointment streams.

Who may do what (checked with require_role; MedFlow itself, role "system", may do everything):

    command                         receptionist  nurse  doctor  admin
    schedule, reschedule, cancel         yes        yes    yes    yes
    check in, mark as no-show            yes        yes    yes    yes
    complete                              -         yes    yes     -
    read (queries.py)               any role in the appointment's clinic

Completing a visit is a clinician's statement that it took place, hence nurses and doctors only.
The provider of an appointment must be a doctor or a nurse of the patient's clinic.

A provider's slot is never double-booked: two appointments of one provider that are not
cancelled never overlap. That rule spans aggregates, so the service checks it against the
`appointments` read model inside the command's transaction, after taking a per-provider lock:
on PostgreSQL a transaction-scoped advisory lock; on SQLite BEGIN IMMEDIATE already serialises
every writer. Of two concurrent bookings of one slot, exactly one wins.
"""

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from django.db import connection
from django.utils import timezone

from medflow.access.models import Membership
from medflow.context import Context, require_permission
from medflow.errors import Conflict, InvalidInput, NotFound, RuleViolated
from medflow.eventstore.commands import CommandResult, execute
from medflow.patients.models import PatientReadModel
from medflow.patients.queries import can_see_clinic, get_patient
from medflow.scheduling.domain import MAX_DURATION, Appointment, Status
from medflow.scheduling.models import AppointmentReadModel

PROVIDER_ROLES = ("doctor", "nurse")


def schedule_appointment(
    ctx: Context, *, patient_id: UUID, provider_id: int, starts_at: Any, ends_at: Any = None,
    duration_minutes: int | None = None, kind: str | None = None, reason: str | None = None,
    appointment_id: UUID | None = None, command_id: UUID | None = None,
    now: datetime | None = None,
) -> CommandResult:
    """Book a patient with a doctor or nurse of the patient's clinic, in a free slot."""
    require_permission(ctx, "scheduling.schedule")
    clinic_id = UUID(str(get_patient(ctx, patient_id).data["clinic_id"]))
    _require_provider(provider_id, clinic_id)
    now = now or timezone.now()

    def decide(appointment: Appointment) -> None:
        appointment.schedule(
            now=now, patient_id=patient_id, clinic_id=clinic_id, provider_id=provider_id,
            starts_at=starts_at, ends_at=ends_at, duration_minutes=duration_minutes, kind=kind,
            reason=reason,
        )
        _require_patient_active(patient_id)
        _require_slot_free(appointment)

    return execute(
        ctx, Appointment, appointment_id or uuid4(), decide, command="ScheduleAppointment",
        create=True, clinic_id=clinic_id, command_id=command_id,
    )


def reschedule_appointment(
    ctx: Context, appointment_id: UUID, *, starts_at: Any, ends_at: Any = None,
    duration_minutes: int | None = None, reason: str | None = None,
    expected_version: int | None = None, command_id: UUID | None = None,
    now: datetime | None = None,
) -> CommandResult:
    """Move an appointment to another free slot of the same provider."""
    require_permission(ctx, "scheduling.reschedule")
    now = now or timezone.now()

    def decide(appointment: Appointment) -> None:
        _require_visible(ctx, appointment)
        appointment.reschedule(
            now=now, starts_at=starts_at, ends_at=ends_at, duration_minutes=duration_minutes,
            reason=reason,
        )
        if appointment.pending:
            _require_patient_active(appointment.patient_id)
            _require_slot_free(appointment)

    return execute(
        ctx.with_reason(reason), Appointment, appointment_id, decide,
        command="RescheduleAppointment", expected_version=expected_version, command_id=command_id,
    )


def cancel_appointment(
    ctx: Context, appointment_id: UUID, *, reason: str | None = None, by: str = "clinic",
    expected_version: int | None = None, command_id: UUID | None = None,
) -> CommandResult:
    """Call an appointment off, freeing the provider's slot."""
    require_permission(ctx, "scheduling.cancel")
    if by == "system" and ctx.role != "system":
        raise InvalidInput("by must be patient or clinic", field="by")

    def decide(appointment: Appointment) -> None:
        _require_visible(ctx, appointment)
        appointment.cancel(reason=reason, by=by)

    return execute(
        ctx.with_reason(reason), Appointment, appointment_id, decide,
        command="CancelAppointment", expected_version=expected_version, command_id=command_id,
    )


def check_in_appointment(
    ctx: Context, appointment_id: UUID, *, at: Any = None, expected_version: int | None = None,
    command_id: UUID | None = None, now: datetime | None = None,
) -> CommandResult:
    """Record the patient's arrival (now, or at an earlier time); this starts an encounter."""
    require_permission(ctx, "scheduling.check_in")
    now = now or timezone.now()

    def decide(appointment: Appointment) -> None:
        _require_visible(ctx, appointment)
        appointment.check_in(now=now, at=at)

    return execute(
        ctx, Appointment, appointment_id, decide, command="CheckInAppointment",
        expected_version=expected_version, command_id=command_id,
    )


def complete_appointment(
    ctx: Context, appointment_id: UUID, *, at: Any = None, expected_version: int | None = None,
    command_id: UUID | None = None, now: datetime | None = None,
) -> CommandResult:
    """Close the visit of a checked-in patient."""
    require_permission(ctx, "scheduling.complete")
    now = now or timezone.now()

    def decide(appointment: Appointment) -> None:
        _require_visible(ctx, appointment)
        appointment.complete(now=now, at=at)

    return execute(
        ctx, Appointment, appointment_id, decide, command="CompleteAppointment",
        expected_version=expected_version, command_id=command_id,
    )


def mark_no_show(
    ctx: Context, appointment_id: UUID, *, expected_version: int | None = None,
    command_id: UUID | None = None, now: datetime | None = None,
) -> CommandResult:
    """Record that the patient did not come to an appointment that has begun."""
    require_permission(ctx, "scheduling.mark_no_show")
    now = now or timezone.now()

    def decide(appointment: Appointment) -> None:
        _require_visible(ctx, appointment)
        appointment.no_show(now=now)

    return execute(
        ctx, Appointment, appointment_id, decide, command="MarkAppointmentNoShow",
        expected_version=expected_version, command_id=command_id,
    )


def _require_visible(ctx: Context, appointment: Appointment) -> None:
    # An appointment of another clinic answers "not found", so that existence does not leak.
    if not can_see_clinic(ctx, appointment.clinic_id):
        raise NotFound(f"no Appointment {appointment.id}", field="id")


def _require_provider(provider_id: int, clinic_id: UUID) -> None:
    works_there = Membership.objects.filter(
        user_id=provider_id, clinic_id=clinic_id, role__in=PROVIDER_ROLES
    ).exists()
    if not works_there:
        raise InvalidInput("provider_id must be a doctor or nurse of the patient's clinic",
                           field="provider_id")


def _require_patient_active(patient_id: UUID) -> None:
    archived = PatientReadModel.objects.filter(id=patient_id).values_list("archived", flat=True)
    if archived.first():
        raise RuleViolated("the patient is archived and takes no new appointments",
                           code="patient_archived", field="patient_id")


def lock_provider(provider_id: int) -> None:
    """Hold, until commit, the lock that serialises bookings of one provider.

    SQLite needs nothing: BEGIN IMMEDIATE lets one writer at a time in. Take it before appending
    (never from an inline handler): appends hold the global-order lock until commit, and taking
    the two in the other order would deadlock against a booking.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"medflow.provider.{provider_id}"]
            )


def _require_slot_free(appointment: Appointment) -> None:
    """Refuse a slot overlapping another live booking of the same provider."""
    lock_provider(appointment.provider_id)
    clash = find_clash(appointment.id, appointment.provider_id, appointment.starts_at,
                       appointment.ends_at)
    if clash is not None:
        raise Conflict(
            f"the provider is already booked from {clash.starts_at:%Y-%m-%d %H:%M}"
            f" to {clash.ends_at:%H:%M} UTC",
            field="starts_at", code="slot_taken",
        )


def find_clash(
    appointment_id: UUID, provider_id: int, starts_at: datetime, ends_at: datetime
) -> AppointmentReadModel | None:
    """Return another live booking of the provider that overlaps [starts_at, ends_at), if any."""
    return (
        AppointmentReadModel.objects.filter(
            provider_id=provider_id,
            # The lower bound only narrows the index range: no booking lasts longer than that.
            starts_at__gt=starts_at - MAX_DURATION,
            starts_at__lt=ends_at,
            ends_at__gt=starts_at,
        )
        .exclude(status=Status.CANCELLED.value)
        .exclude(id=appointment_id)
        .order_by("starts_at")
        .first()
    )
