"""Read side of the scheduling context, always scoped to the caller's clinics."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from uuid import UUID

from django.db.models import QuerySet

from medflow.context import Context
from medflow.errors import NotFound
from medflow.eventstore.commands import load_aggregate
from medflow.patients.models import PatientReadModel
from medflow.patients.queries import get_patient
from medflow.scheduling.domain import Appointment, Status
from medflow.scheduling.models import AppointmentReadModel


@dataclass(frozen=True)
class AppointmentView:
    data: dict[str, Any]
    version: int


def visible_appointments(ctx: Context) -> QuerySet[AppointmentReadModel]:
    """Return the appointments of the caller's clinics."""
    rows = AppointmentReadModel.objects.all()
    return rows if ctx.role == "system" else rows.filter(clinic_id__in=ctx.clinic_ids)


def get_appointment(ctx: Context, appointment_id: UUID) -> AppointmentView:
    """Return an appointment's current state from the read model."""
    row = visible_appointments(ctx).filter(id=appointment_id).first()
    if row is None:
        raise NotFound(f"no Appointment {appointment_id}", field="id")
    ctx.note_read(row.patient_id, row.clinic_id)
    return AppointmentView(row.current_data, row.version)


def get_appointment_at(ctx: Context, appointment_id: UUID, as_of: datetime) -> AppointmentView:
    """Return an appointment as it stood at a time, replayed from the log."""
    get_appointment(ctx, appointment_id)
    appointment = load_aggregate(Appointment, appointment_id, as_of=as_of)
    if not appointment.exists:
        raise NotFound(f"Appointment {appointment_id} did not exist at {as_of}", field="as_of")
    return AppointmentView(appointment.state(), appointment.version)


def patient_appointments(
    ctx: Context, patient_id: UUID, *, as_of: datetime | None = None
) -> list[AppointmentView]:
    """Return a patient's appointments by start time, as they stand now or stood at `as_of`."""
    get_patient(ctx, patient_id)  # scope check: 404 outside the caller's clinics
    rows = visible_appointments(ctx).filter(patient_id=patient_id).order_by("starts_at", "id")
    if as_of is None:
        return [AppointmentView(row.current_data, row.version) for row in rows]
    views = []
    for row in rows.filter(scheduled_at__lte=as_of):
        if row.last_updated <= as_of:
            views.append(AppointmentView(row.current_data, row.version))
        else:
            # Changed since: replay only this one up to as_of.
            appointment = load_aggregate(Appointment, row.id, as_of=as_of)
            views.append(AppointmentView(appointment.state(), appointment.version))
    return sorted(views, key=lambda view: (view.data["starts_at"], view.data["id"]))


@dataclass(frozen=True)
class DayEntry:
    appointment: AppointmentReadModel
    patient: PatientReadModel | None


def provider_day(
    ctx: Context, provider_id: int, day: date, tz: tzinfo, *, include_cancelled: bool = False
) -> list[DayEntry]:
    """Return a provider's appointments touching one day (in `tz`) with their patients, by start.

    Only appointments of the caller's clinics appear; a provider of another clinic has an
    empty day, whether or not they exist.
    """
    start = datetime.combine(day, time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
    rows = visible_appointments(ctx).filter(
        provider_id=provider_id, starts_at__lt=end, ends_at__gt=start
    )
    if not include_cancelled:
        rows = rows.exclude(status=Status.CANCELLED.value)
    appointments = list(rows.order_by("starts_at", "id"))
    patients = PatientReadModel.objects.in_bulk({row.patient_id for row in appointments})
    # The day list shows each patient's name: a read of their record for the access log.
    for patient_id, clinic_id in dict.fromkeys((r.patient_id, r.clinic_id) for r in appointments):
        ctx.note_read(patient_id, clinic_id)
    return [DayEntry(row, patients.get(row.patient_id)) for row in appointments]
