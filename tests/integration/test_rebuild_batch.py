"""The batch path of the projections (rebuild pages, multi-event dispatch) leaves every read model
exactly as the per-event handlers do: compared row for row on a varied log."""

import dataclasses
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from medflow.access import services as access
from medflow.clinical import services as clinical
from medflow.clinical.models import AllergyRecord, DiagnosisRecord, MedicationRecord, NoteRecord
from medflow.context import system_context
from medflow.demo.loader import DEMO_CLINIC_ID
from medflow.eventstore import store
from medflow.eventstore.handlers import InlineHandlers
from medflow.labs import services as labs
from medflow.labs.models import LabOrderReadModel, LabResultReadModel
from medflow.patients import services as patients
from medflow.patients.models import PatientReadModel
from medflow.projections.catalog import inline_projections
from medflow.projections.rebuild import (
    SUFFIX,
    _compared_fields,
    build_shadow,
    drop_shadows,
    rebuild,
)
from medflow.scheduling import services as scheduling
from medflow.scheduling.models import AppointmentReadModel
from medflow.work import services as work
from medflow.work.models import TaskReadModel

pytestmark = pytest.mark.django_db(transaction=True)


def _demo_doctor():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="demo")


def _vary(ctx) -> None:
    """Add to the demo log the changes it lacks: updates, archive, forget, corrections, ..."""
    doctor = _demo_doctor()
    people = list(PatientReadModel.objects.filter(clinic_id=DEMO_CLINIC_ID).order_by("mrn"))
    updated, archived, forgotten = people[10], people[11], people[12]
    patients.update_patient(ctx, updated.id, {"phone": "+1 555 0100"}, expected_version=None)
    patients.update_patient(ctx, updated.id, {"family_name": "Renamed"}, expected_version=None)
    patients.update_patient(ctx, archived.id, {"phone": "+1 555 0101"}, expected_version=None)

    # Lab corrections (one of them critical: the process manager raises an alert and a task),
    # cancellations of a result and of an order.
    results = list(LabResultReadModel.objects.exclude(patient_id__in=[archived.id, forgotten.id])
                   .filter(value__isnull=False).order_by("id")[:3])
    first, second, third = results
    version = LabOrderReadModel.objects.get(id=first.order_id).version
    labs.correct_lab_result(ctx, first.order_id, first.id,
                            {"value": first.value + 1, "abnormal_flag": "H"},
                            reason="transcription", expected_version=version)
    version = LabOrderReadModel.objects.get(id=second.order_id).version
    labs.correct_lab_result(ctx, second.order_id, second.id,
                            {"value": (second.critical_high or 999) + 1, "abnormal_flag": "HH"},
                            reason="re-run", expected_version=version)
    version = LabOrderReadModel.objects.get(id=third.order_id).version
    labs.cancel_lab_result(ctx, third.order_id, third.id, reason="haemolysed",
                           expected_version=version)
    tests = [{"loinc_code": "2345-7", "display": "Glucose"}]
    twice = labs.place_lab_order(ctx, updated.id, tests=tests, ordering_provider_id=doctor.pk)
    labs.cancel_lab_order(ctx, twice.aggregate_id, reason="ordered twice", expected_version=1)
    # A critical result on a new order, in a patient soon forgotten.
    order = labs.place_lab_order(ctx, forgotten.id, tests=tests, ordering_provider_id=doctor.pk)
    labs.record_lab_result(ctx, order.aggregate_id, loinc_code="2345-7", display="Glucose",
                           unit="mg/dL", value=900.0, critical_high=400.0,
                           effective_at=timezone.now() - timedelta(hours=1))

    # Clinical changes: a diagnosis status, a note signed and amended, a medication stopped,
    # vitals entered late (not the latest).
    diagnosis = DiagnosisRecord.objects.filter(status="active").order_by("id").first()
    clinical.change_diagnosis_status(ctx, diagnosis.id, clinical_status="remission",
                                     reason="better")
    note = NoteRecord.objects.filter(status="draft").order_by("id").first()
    if note is not None:
        clinical.sign_note(ctx, note.id)
        clinical.amend_note(ctx, note.id, amendment="Addendum.", reason="late result")
    medication = MedicationRecord.objects.filter(status="active").order_by("id").first()
    clinical.discontinue_medication(ctx, medication.id, reason="side effects")
    clinical.record_vital_signs(ctx, patient_id=updated.id, heart_rate=71,
                                measured_at=timezone.now() - timedelta(days=3650))
    clinical.record_vital_signs(ctx, patient_id=updated.id, heart_rate=72, temperature_c=37.1)
    # Allergies (the demo records them active): one resolved, one entered in error; the
    # forgotten patient keeps theirs until forgotten.
    resolved, erroneous = AllergyRecord.objects.exclude(patient_id=forgotten.id).order_by("id")[:2]
    clinical.resolve_allergy(ctx, resolved.id, reason="outgrown")
    clinical.refute_allergy(ctx, erroneous.id, reason="wrong chart", entered_in_error=True)

    # Scheduling: reschedule, cancel, check in (starts an encounter), complete; and a visit
    # booked for a patient who is archived later (the process manager cancels it).
    appointments = list(AppointmentReadModel.objects.filter(status="scheduled")
                        .order_by("starts_at"))
    moved, cancelled = appointments[0], appointments[1]
    scheduling.reschedule_appointment(ctx, moved.id, starts_at=moved.starts_at + timedelta(days=7),
                                      duration_minutes=30)
    scheduling.cancel_appointment(ctx, cancelled.id, reason="patient called")
    now = timezone.now()
    seen = scheduling.schedule_appointment(
        ctx, patient_id=updated.id, provider_id=doctor.pk, starts_at=now - timedelta(minutes=20),
        duration_minutes=30, reason="cough", now=now - timedelta(hours=1)).aggregate_id
    scheduling.check_in_appointment(ctx, seen, at=now - timedelta(minutes=15))
    scheduling.complete_appointment(ctx, seen, at=now - timedelta(minutes=1))
    scheduling.schedule_appointment(ctx, patient_id=archived.id, provider_id=doctor.pk,
                                    starts_at=now + timedelta(days=30), duration_minutes=30,
                                    reason="review")
    patients.archive_patient(ctx, archived.id, reason="moved away")

    # Work: the demo task reassigned and completed, an alert raised and acknowledged.
    task = TaskReadModel.objects.order_by("assigned_at").first()
    work.complete_task(ctx, task.id, note="done", expected_version=task.version)
    alert = work.raise_alert(ctx, severity="warning", message="Check the fridge",
                             clinic_id=DEMO_CLINIC_ID, patient_id=updated.id)
    work.acknowledge_alert(ctx, alert.aggregate_id, note="checked", expected_version=1)

    # Access: a role revoked, break-glass access granted.
    access.revoke_role(ctx, DEMO_CLINIC_ID, "demo-desk")
    patients.forget_patient(ctx, forgotten.id, reason="erasure request", override_retention=True)
    # Events after the forgetting still concern the other patients.
    patients.update_patient(ctx, updated.id, {"phone": "+1 555 0199"}, expected_version=None)


def _rows(model, table: str) -> list[tuple]:
    fields = _compared_fields(model)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {connection.ops.quote_name(table)}")
        return sorted(map(tuple, cursor.fetchall()), key=repr)


def _shadow(projection, batch: int) -> dict[str, list[tuple]]:
    build_shadow(projection, batch=batch, restart=True)
    try:
        return {m._meta.db_table: _rows(m, m._meta.db_table + SUFFIX) for m in projection.tables}
    finally:
        drop_shadows(projection)


@pytest.fixture
def varied_log(settings):
    settings.DEBUG = True  # the demo users exist only in development
    call_command("demo", "load", stdout=io.StringIO(), stderr=io.StringIO())
    _vary(system_context("batch test"))
    return store.last_position()


def test_log_is_varied(varied_log):
    types = set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT event_type FROM event_store")
        types = {row[0] for row in cursor.fetchall()}
    assert {
        "PatientUpdated", "PatientArchived", "PatientForgotten", "LabResultUpdated",
        "LabResultCancelled", "LabOrderCancelled", "DiagnosisStatusChanged",
        "MedicationDiscontinued", "VitalSignsRecorded", "AppointmentRescheduled",
        "AppointmentCancelled", "AppointmentCheckedIn", "AppointmentCompleted", "EncounterStarted",
        "TaskCompleted", "AlertRaised", "AlertAcknowledged", "AllergyRecorded", "AllergyResolved",
        "AllergyRefuted",
    } <= types


def test_batch_rebuild_equals_per_event_rebuild_and_live_tables(varied_log):
    for projection in inline_projections():
        one_by_one = dataclasses.replace(projection, handle_batch=None)
        reference = _shadow(one_by_one, batch=1000)
        live = {m._meta.db_table: _rows(m, m._meta.db_table) for m in projection.tables}
        assert reference == live, projection.name
        assert any(reference.values()), projection.name  # the log feeds every projection
        # Pages of 7 cut streams in the middle (rows folded from stored ones); one page of all
        # folds everything in memory.
        for batch in (7, 100_000):
            assert _shadow(projection, batch) == reference, (projection.name, batch)


def test_verify_passes_after_rebuild_all(varied_log):
    for projection in inline_projections():
        rebuild(projection, batch=50)
    call_command("verify", stdout=io.StringIO())


def _schema(projection) -> dict:
    with connection.cursor() as cursor:
        return {
            m._meta.db_table: sorted(
                (name, bool(c["unique"]), bool(c["primary_key"]), bool(c["foreign_key"]),
                 tuple(c["columns"] or ()))
                for name, c in connection.introspection.get_constraints(
                    cursor, m._meta.db_table).items()
            )
            for m in projection.tables
        }


def test_rebuild_keeps_the_live_tables_constraints_and_index_names(varied_log):
    projections = inline_projections()
    before = {p.name: _schema(p) for p in projections}
    for projection in projections:
        rebuild(projection, batch=100)
    assert {p.name: _schema(p) for p in projections} == before
    # New rows still get fresh ids after the swap (sequences moved past the copied ones).
    patients.update_patient(system_context("t"), PatientReadModel.objects.filter(
        forgotten=False, archived=False).first().id, {"phone": "+1 555 0142"},
        expected_version=None)
    call_command("verify", stdout=io.StringIO())


def test_forgotten_patient_stays_redacted_after_batch_rebuild(varied_log):
    forgotten = PatientReadModel.objects.get(forgotten=True)
    for projection in inline_projections():
        rebuild(projection, batch=100_000)
    row = PatientReadModel.objects.get(id=forgotten.id)
    assert row.forgotten and row.family_name == "[redacted]" and row.mrn.startswith("forgotten:")
    from medflow.timeline.models import TimelineEntry

    entries = TimelineEntry.objects.filter(patient_id=forgotten.id)
    assert list(entries.values_list("event_type", flat=True)) == ["PatientForgotten"]


def test_dispatch_runs_batches_then_process_managers_in_log_order():
    """A process manager sees the read model as one-by-one dispatch would show it."""
    handlers = InlineHandlers()
    table: list[int] = []
    seen: list[tuple[int, int]] = []

    class Fake:
        def __init__(self, position: int, event_type: str) -> None:
            self.position, self.event_type = position, event_type

    def project(recorded) -> None:
        table.append(recorded.position)

    def project_batch(events) -> None:
        table.extend(r.position for r in events)

    def react(recorded) -> None:
        seen.append((recorded.position, len(table)))

    for func, module in ((project, "fake.projections"), (project_batch, "fake.projections"),
                         (react, "fake.process")):
        func.__module__ = module
    handlers._by_module["fake.projections"].append((None, project))
    handlers._every.append(project)
    handlers.batched()(project_batch)
    handlers._handlers["Reacted"].append(react)
    handlers._by_module["fake.process"].append((frozenset({"Reacted"}), react))

    events = [Fake(i, "Reacted" if i in (3, 7) else "Plain") for i in range(1, 11)]
    handlers.dispatch(events)
    assert table == list(range(1, 11))
    assert seen == [(3, 3), (7, 7)]


def test_shadow_tables_get_their_secondary_indexes_once_the_rows_are_in(varied_log):
    if connection.vendor != "postgresql":
        pytest.skip("indexes built after the rows, and statistics, are a PostgreSQL matter")
    (timeline,) = [p for p in inline_projections() if p.name == "timeline"]
    shadow = timeline.tables[0]._meta.db_table + SUFFIX

    def index_names():
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [shadow])
            return {row[0] for row in cursor.fetchall()}

    build_shadow(timeline, batch=100, restart=True)
    # While the rows go in: only the indexes that enforce something (the key, unique event ids).
    assert len(index_names()) == 2
    with connection.cursor() as cursor:
        # Analyzed as it grew: the projections' row lookups are planned on its real size.
        cursor.execute("SELECT reltuples > 0 FROM pg_class WHERE oid = to_regclass(%s)",
                       [shadow])
        assert cursor.fetchone() == (True,)
    drop_shadows(timeline)
    before = _schema(timeline)
    rebuild(timeline, batch=100)
    assert _schema(timeline) == before
