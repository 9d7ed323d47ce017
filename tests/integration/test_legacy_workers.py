"""The legacy migration in worker processes (`--workers N`): the same events, map and read models
as one process, refusals reported, a killed worker resumed by a rerun. Transactional tests: the
workers are processes of their own, and see only what is committed."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from medflow.legacy import models as m
from medflow.legacy import workers
from medflow.legacy.migrate import migrate
from medflow.legacy.synthea import load_synthea
from medflow.legacy.validate import validate
from tests.integration.test_legacy_batch import migration_map
from tests.integration.test_legacy_migration import fingerprint, legacy_events, write_subset
from tests.support.subprocess_db import medflow

pytestmark = pytest.mark.skipif(not workers.can_fork(), reason="workers are forked processes")


@pytest.fixture
def subset(tmp_path):
    return write_subset(tmp_path / "synthea", patients=5)


@pytest.fixture
def forks(monkeypatch) -> list[str]:
    """Record each step's fork of workers (so that a test knows they ran, not the fallback)."""
    calls: list[str] = []
    run = workers.run

    def counted(work, parts, on_rows):
        calls.append(parts)
        return run(work, parts, on_rows)

    monkeypatch.setattr(workers, "run", counted)
    return calls


def one_process() -> tuple[list, list, int]:
    """Migrate in this process inside a transaction rolled back; return what it wrote (events,
    map, and how many events it reported)."""
    with transaction.atomic():
        report = migrate(batch_size=7)
        assert report.refusals == []
        expected = (fingerprint(), migration_map(), report.events)
        transaction.set_rollback(True)
    assert legacy_events() == []
    return expected


def test_patient_ranges_cover_every_patient_once():
    ids = [f"p{n:03d}" for n in range(10)]
    ranges = workers.patient_ranges(ids, 3)
    assert ranges == [(None, "p003"), ("p003", "p006"), ("p006", None)]
    parts = [[i for i in ids if (lo is None or i >= lo) and (hi is None or i < hi)]
             for lo, hi in ranges]
    assert sorted(i for part in parts for i in part) == ids
    assert [len(part) for part in parts] == [3, 3, 4]
    # Never more ranges than patients, never none.
    assert workers.patient_ranges(["a"], 4) == [(None, None)]
    assert workers.patient_ranges([], 2) == [(None, None)]


@pytest.mark.django_db(transaction=True)
def test_workers_record_what_one_process_records(subset, forks):
    load_synthea(subset)
    expected = one_process()
    assert forks == []

    report = migrate(batch_size=7, workers=2)
    assert forks == [2]  # two workers, each taking encounters ... encounter ends in turn
    assert report.refusals == []
    assert (fingerprint(), migration_map(), report.events) == expected
    assert sum(report.migrated.values()) == m.MigrationMap.objects.count()
    checked = validate()
    assert checked.ok, checked.text()
    # A rerun with workers finds everything migrated.
    again = migrate(batch_size=7, workers=2)
    assert again.events == 0 and sum(again.migrated.values()) == 0
    assert sum(again.already.values()) == m.MigrationMap.objects.count()


@pytest.mark.django_db(transaction=True)
def test_a_row_refused_in_a_worker_is_reported(subset, forks):
    load_synthea(subset)
    row = m.VitalSigns.objects.exclude(systolic=None).order_by("id").first()
    m.VitalSigns.objects.filter(id=row.id).update(systolic=900)
    report = migrate(batch_size=7, workers=2)
    assert [(r.table, r.row_id, r.field) for r in report.refusals] == [
        ("legacy_vital_signs", row.id, "systolic")]
    assert report.migrated["legacy_vital_signs"] == m.VitalSigns.objects.count() - 1
    assert [(x.table, x.row_id) for x in validate().mismatches] == [("legacy_vital_signs", row.id)]
    assert forks == [2]


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_loses_only_its_batch_and_a_rerun_ends_identical(subset):
    load_synthea(subset)
    expected = one_process()

    killed = medflow("legacy", "migrate", "--batch-size", "7", "--workers", "2",
                     failpoint="legacy-after-rows:40")
    assert killed.returncode != 0
    assert "stopped with exit code 70" in killed.stderr
    assert "run migrate again to resume" in killed.stderr
    partial = m.MigrationMap.objects.count()
    assert 0 < partial < len(expected[1])

    rerun = medflow("legacy", "migrate", "--batch-size", "7", "--workers", "2")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "OK: no mismatch" in rerun.stdout
    assert (fingerprint(), migration_map()) == expected[:2]
    seen = [(e.metadata["legacy_table"], e.metadata["legacy_id"], e.event_type)
            for e in legacy_events() if e.event_type != "StaffRoleGranted"]
    assert len(seen) == len(set(seen))


@pytest.mark.django_db(transaction=True)
def test_an_error_in_a_worker_stops_it_and_keeps_the_other_work(subset, monkeypatch):
    load_synthea(subset)
    first_patient = min(m.Patient.objects.values_list("id", flat=True))
    from medflow.legacy import batched

    original = batched.BatchSteps.lab_results

    def failing(self, uow, look, row):
        if row.patient_id == first_patient:
            raise OSError("disk full")
        return original(self, uow, look, row)

    monkeypatch.setattr(batched.BatchSteps, "lab_results", failing)
    with pytest.raises(workers.WorkerFailed, match=r"worker [12] of 2: OSError: disk full"):
        migrate(batch_size=7, workers=2)
    # The other worker's lab results were stored, the failing one's not.
    migrated = set(m.MigrationMap.objects.filter(legacy_table="legacy_lab_results")
                   .values_list("legacy_id", flat=True))
    of_first = set(m.LabResult.objects.filter(patient_id=first_patient).values_list("id", flat=True))
    assert migrated and not migrated & of_first
    # The other worker went on with the later steps for its patients; the failed one did not.
    later = set(m.MigrationMap.objects.filter(legacy_table="legacy_medications")
                .values_list("legacy_id", flat=True))
    of_first = set(m.Medication.objects.filter(patient_id=first_patient)
                   .values_list("id", flat=True))
    assert later and not later & of_first
    monkeypatch.setattr(batched.BatchSteps, "lab_results", original)
    assert migrate(batch_size=7, workers=2).refusals == []
    assert validate().ok


@pytest.mark.django_db
def test_inside_a_transaction_the_steps_run_here(subset, monkeypatch):
    # A caller's transaction (or a dry run's) cannot be shared with other processes.
    load_synthea(subset)
    monkeypatch.setattr(workers, "run", lambda *a, **k: pytest.fail("forked inside a transaction"))
    assert connection.in_atomic_block
    assert migrate(batch_size=50, workers=2).refusals == []
    assert validate().ok


def test_workers_are_forked_only_where_forking_is_safe(monkeypatch):
    monkeypatch.setattr(workers.sys, "platform", "darwin")
    assert not workers.can_fork()
    monkeypatch.setattr(workers.sys, "platform", "linux")
    assert workers.can_fork()


def test_the_command_refuses_a_count_of_workers_below_one():
    with pytest.raises(CommandError, match="--workers: must be 1 or more, not 0"):
        call_command("legacy", "migrate", "--workers", "0")
