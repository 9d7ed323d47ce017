"""The rollback procedure: backup, dual-write, sync, cutover, archive, rollback."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, transaction
from django.utils import timezone

from medflow.clinical import services as clinical
from medflow.context import system_context
from medflow.eventstore import store
from medflow.legacy import models as m
from medflow.legacy import ops
from medflow.legacy.mapping import aggregate_id
from medflow.legacy.migrate import migrate
from medflow.legacy.synthea import load_synthea
from medflow.legacy.validate import validate
from medflow.patients.models import PatientReadModel
from medflow.patients.services import register_patient, update_patient
from tests.integration.test_legacy_migration import subset  # noqa: F401  (fixture)

NEW_PATIENT = {"mrn": "NEW-1", "given_names": "Grace", "family_name": "Hopper",
               "birth_date": "1906-12-09", "sex": "female"}


@pytest.fixture
def migrated(db, subset):  # noqa: F811
    load_synthea(subset)
    report = migrate()
    assert report.refusals == []
    ops.set_state(ops.LAST_SYNC, timezone.now().isoformat())
    return subset


@pytest.fixture
def dual_write(settings):
    settings.MEDFLOW_DUAL_WRITE = True


def test_backup_dumps_every_legacy_table(migrated, tmp_path):
    path = tmp_path / "backup.json"
    call_command("legacy", "backup", str(path), verbosity=0)
    data = json.loads(path.read_text())
    assert len(data["tables"]["legacy_patients"]) == m.Patient.objects.count()
    assert len(data["tables"]["legacy_lab_results"]) == m.LabResult.objects.count()


def test_dual_write_off_leaves_legacy_tables_alone(migrated, doctor_ctx, clinic):
    register_patient(doctor_ctx, clinic_id=clinic.id, **NEW_PATIENT)
    assert not m.Patient.objects.filter(mrn="NEW-1").exists()


def test_dual_write_mirrors_service_writes_and_not_migrated_ones(migrated, dual_write, doctor,
                                                                 doctor_ctx, clinic):
    before = m.Patient.objects.count()
    patient = register_patient(doctor_ctx, clinic_id=clinic.id, **NEW_PATIENT).aggregate_id
    measured = timezone.now() - timedelta(minutes=5)
    encounter = clinical.start_encounter(doctor_ctx, patient_id=patient, provider_id=doctor.pk,
                                         started_at=measured).aggregate_id
    clinical.record_vital_signs(doctor_ctx, patient_id=patient, encounter_id=encounter,
                                measured_at=measured, systolic=120, diastolic=80, heart_rate=61)
    clinical.end_encounter(doctor_ctx, encounter)
    row = m.Patient.objects.get(mrn="NEW-1")
    assert (row.first_name, row.last_name, row.gender) == ("Grace", "Hopper", "F")
    assert m.Patient.objects.count() == before + 1
    vitals = m.VitalSigns.objects.get(patient_id=row.id)
    assert (vitals.systolic, vitals.heart_rate, vitals.encounter_id) == (120, 61, str(encounter))
    assert m.Encounter.objects.get(id=str(encounter)).stop is not None
    # mirrored rows are known to the migration: sync and migrate make no second event of them
    events = len(list(store.iter_all(0)))
    result = ops.sync()
    assert result["events"] == 0 and result["refused"] == []
    assert len(list(store.iter_all(0))) == events
    assert validate().ok


def test_sync_turns_direct_legacy_writes_into_events(migrated):
    patient = m.Patient.objects.order_by("id").first()
    encounter = m.Encounter.objects.filter(patient=patient, stop=None).first() or None
    m.Patient.objects.filter(id=patient.id).update(last_name="Renamed", updated_at=timezone.now())
    row = m.VitalSigns.objects.create(patient=patient, encounter=encounter,
                                      measured_at=datetime(2024, 1, 2, 10, tzinfo=UTC),
                                      systolic=131, diastolic=79, heart_rate=70.6)
    result = ops.sync()
    assert result["patients_updated"] == 1
    assert result["migrated"] == {"legacy_vital_signs": 1}
    assert PatientReadModel.objects.get(id=aggregate_id("legacy_patients", patient.id)).family_name \
        == "Renamed"
    assert m.MigrationMap.objects.filter(legacy_table="legacy_vital_signs", legacy_id=row.id).exists()
    assert validate().ok
    # a second sync finds nothing new
    again = ops.sync()
    assert again["events"] == 0 and again["patients_updated"] == 0


def _write_refused(sql_action):
    with pytest.raises(DatabaseError, match="read-only"), transaction.atomic():
        sql_action()


def test_cutover_makes_legacy_tables_read_only(migrated):
    call_command("legacy", "cutover", verbosity=0)
    patient = m.Patient.objects.order_by("id").first()
    _write_refused(lambda: m.Patient.objects.filter(id=patient.id).update(last_name="X"))
    _write_refused(lambda: m.Patient.objects.filter(id=patient.id).delete())
    _write_refused(lambda: m.Clinic.objects.create(name="new"))
    _write_refused(lambda: m.LabResult.objects.all().delete())
    assert m.Patient.objects.get(id=patient.id).last_name == patient.last_name
    with pytest.raises(CommandError, match="already cut over"):
        call_command("legacy", "cutover", verbosity=0)
    with pytest.raises(CommandError, match="cut over"):
        call_command("legacy", "sync", verbosity=0)


def test_dual_write_stops_at_cutover(migrated, dual_write, doctor_ctx, clinic):
    ops.cutover()
    register_patient(doctor_ctx, clinic_id=clinic.id, **NEW_PATIENT)
    assert not m.Patient.objects.filter(mrn="NEW-1").exists()


def test_archive_needs_cutover_then_empties_tables_into_a_file(migrated, tmp_path):
    path = tmp_path / "archive.json"
    with pytest.raises(CommandError, match="cut over before archiving"):
        call_command("legacy", "archive", str(path), verbosity=0)
    counts = {model._meta.db_table: model.objects.count() for model in m.LEGACY_MODELS}
    ops.cutover()
    call_command("legacy", "archive", str(path), verbosity=0)
    data = json.loads(path.read_text())
    assert {t: len(rows) for t, rows in data["tables"].items()} == counts
    assert all(model.objects.count() == 0 for model in m.LEGACY_MODELS)
    _write_refused(lambda: m.Clinic.objects.create(name="new"))  # still read-only


def test_rollback_carries_writes_since_cutover_back(migrated, doctor_ctx, clinic):
    ops.cutover()
    patient = register_patient(doctor_ctx, clinic_id=clinic.id, **NEW_PATIENT).aggregate_id
    old = m.Patient.objects.order_by("id").first()
    update_patient(system_context("test"), aggregate_id("legacy_patients", old.id),
                   {"phone": "+1 555 0100"}, expected_version=None)
    clinical.record_vital_signs(doctor_ctx, patient_id=patient, measured_at=timezone.now(),
                                systolic=118, diastolic=76)
    result = ops.rollback()
    assert result["events_carried_back"] == 3  # the new patient, the phone, the vital signs
    changed = m.Patient.objects.get(id=old.id)
    assert (changed.phone, changed.last_name, changed.birth_date) == (
        "+1 555 0100", old.last_name, old.birth_date)
    row = m.Patient.objects.get(mrn="NEW-1")
    assert m.VitalSigns.objects.get(patient_id=row.id).systolic == 118
    # writable again, and the source of truth: a new legacy row syncs into events
    m.Patient.objects.filter(id=row.id).update(last_name="Hopper-Murray", updated_at=timezone.now())
    assert not ops.is_cut_over()
    assert ops.sync()["events"] == 0  # nothing new unmapped; the change is a patient update
    assert PatientReadModel.objects.get(id=patient).family_name == "Hopper-Murray"


def test_rollback_after_archive_restores_rows(migrated, tmp_path, doctor_ctx, clinic):
    counts = {model: model.objects.count() for model in m.LEGACY_MODELS}
    ops.cutover()
    ops.archive(tmp_path / "archive.json")
    register_patient(doctor_ctx, clinic_id=clinic.id, **NEW_PATIENT)
    call_command("legacy", "rollback", verbosity=0)
    assert m.Patient.objects.count() == counts[m.Patient] + 1
    for model in m.LEGACY_MODELS:
        if model is not m.Patient and model is not m.Clinic:
            assert model.objects.count() == counts[model]
    assert validate().tables["legacy_lab_results"].legacy == counts[m.LabResult]


def test_rollback_refused_before_cutover(migrated):
    with pytest.raises(CommandError, match="not cut over"):
        call_command("legacy", "rollback", verbosity=0)
