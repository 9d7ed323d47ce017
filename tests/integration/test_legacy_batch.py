"""The batched migration path against the per-row one (the services, row by row): same events,
same map, same read models; refusals reported without losing the rest of the batch."""

from datetime import timedelta

import pytest
from django.db import transaction

from medflow.errors import RuleViolated
from medflow.eventstore import batch as uow_module
from medflow.eventstore import store
from medflow.legacy import models as m
from medflow.legacy.migrate import migrate
from medflow.legacy.synthea import load_synthea
from medflow.legacy.validate import validate
from tests.integration.test_legacy_migration import fingerprint, legacy_events, write_subset


@pytest.fixture
def loaded(db, tmp_path):
    load_synthea(write_subset(tmp_path / "synthea"))


def log_order() -> list[tuple]:
    """The migration's events in log order, by legacy row and event type."""
    return [(e.metadata["legacy_table"], e.metadata["legacy_id"], e.event_type)
            for e in legacy_events()]


def migration_map() -> list[tuple]:
    """Each legacy row's aggregate, and the type and version of the event it maps to."""
    events = {e.id: (e.event_type, e.version) for e in store.iter_all(0)}
    return sorted((row.legacy_table, row.legacy_id, str(row.aggregate_id), events.get(row.event_id))
                  for row in m.MigrationMap.objects.all())


def test_batched_path_records_what_the_services_record_row_by_row(loaded):
    with transaction.atomic():
        per_row = migrate(batch_size=7, batched=False)
        expected = (fingerprint(), log_order(), migration_map())
        transaction.set_rollback(True)
    assert per_row.refusals == [] and legacy_events() == []

    batched = migrate(batch_size=50)
    assert batched.refusals == []
    assert (batched.events, batched.migrated) == (per_row.events, per_row.migrated)
    assert (fingerprint(), log_order(), migration_map()) == expected
    assert validate().ok


def test_lab_results_of_one_order_in_one_batch_share_the_order(loaded):
    report = migrate(batch_size=1000)
    assert report.refusals == []
    events = legacy_events()
    placed = [e.aggregate_id for e in events if e.event_type == "LabOrderPlaced"]
    results = [e for e in events if e.event_type == "LabResultRecorded"]
    assert len(placed) == len(set(placed)) < len(results)
    # Each order's results follow its placement, in version order on one stream.
    for order_id in placed:
        versions = [e.version for e in store.load(order_id)]
        assert versions == list(range(1, len(versions) + 1))


def test_a_row_refused_after_its_first_command_restarts_the_batch_without_it(loaded):
    # Adding the diagnosis succeeds; resolving it before its onset is refused: the row's first
    # event must not be stored, and the other rows of the batch must be.
    row = m.Diagnosis.objects.order_by("start", "id")[1]
    m.Diagnosis.objects.filter(id=row.id).update(stop=row.start - timedelta(days=3))
    report = migrate(batch_size=1000)
    assert [(r.table, r.row_id, r.field) for r in report.refusals] == [
        ("legacy_diagnoses", row.id, "resolved_on")]
    assert report.migrated["legacy_diagnoses"] == m.Diagnosis.objects.count() - 1
    assert not [e for e in legacy_events() if e.metadata["legacy_id"] == row.id]
    checked = validate()
    assert [(x.table, x.row_id) for x in checked.mismatches] == [("legacy_diagnoses", row.id)]


def test_a_refusal_only_the_store_finds_is_isolated_by_splitting_the_batch(loaded, monkeypatch):
    vitals = list(m.VitalSigns.objects.order_by("measured_at", "id"))
    bad = vitals[len(vitals) // 3].id
    dispatch = uow_module.inline.dispatch

    def refusing(events):
        events = list(events)
        if any(e.metadata.get("legacy_id") == bad for e in events):
            raise RuleViolated("refused by a later check", code="test_refusal")
        dispatch(events)

    monkeypatch.setattr(uow_module.inline, "dispatch", refusing)
    report = migrate(batch_size=1000)
    assert [(r.table, r.row_id, r.code) for r in report.refusals] == [
        ("legacy_vital_signs", bad, "test_refusal")]
    assert report.migrated["legacy_vital_signs"] == len(vitals) - 1
    assert not m.MigrationMap.objects.filter(legacy_id=bad).exists()
    assert not [e for e in legacy_events() if e.metadata["legacy_id"] == bad]
    # Rerun: only the refused row is left; it is refused again, nothing else changes.
    before = fingerprint()
    again = migrate(batch_size=1000)
    assert [r.row_id for r in again.refusals] == [bad] and again.events == 0
    assert fingerprint() == before


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "per-row"])
def test_a_lab_result_naming_another_patients_encounter_is_refused(loaded, batched):
    # Its result would hang on that encounter's order, in the other patient's chart.
    lab = m.LabResult.objects.exclude(encounter_id=None).order_by("id").first()
    other = m.Encounter.objects.exclude(patient_id=lab.patient_id).order_by("id").first()
    m.LabResult.objects.filter(id=lab.id).update(encounter_id=other.id)
    report = migrate(batch_size=1000, batched=batched)
    assert [(r.table, r.row_id, r.field) for r in report.refusals] == [
        ("legacy_lab_results", lab.id, "encounter_id")]
    assert not [e for e in legacy_events() if e.metadata["legacy_id"] == lab.id]
