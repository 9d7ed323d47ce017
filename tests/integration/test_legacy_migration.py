"""Legacy migration: Synthea load, migration through the services, validation, resumability."""

import csv
import gc
import shutil
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from medflow.eventstore import store
from medflow.legacy import models as m
from medflow.legacy.mapping import aggregate_id
from medflow.legacy.migrate import _pages, migrate
from medflow.legacy.synthea import LoadError, load_synthea
from medflow.legacy.validate import validate
from tests.support.subprocess_db import medflow

SAMPLE = Path(__file__).resolve().parents[2].parent / "shared/data/synthea-ca/csv"
PATIENTS = 3  # the first patients of the sample: small, with vitals, labs, diagnoses, medications


def write_subset(folder: Path, patients: int = PATIENTS) -> Path:
    """Copy the first `patients` patients' rows of the sample (and what they refer to)."""
    if not SAMPLE.is_dir():
        pytest.skip(f"the Synthea sample is not at {SAMPLE}")
    folder.mkdir(parents=True, exist_ok=True)

    def read(name):
        with (SAMPLE / name).open(newline="") as handle:
            reader = csv.DictReader(handle)
            return reader.fieldnames, list(reader)

    def write(name, fields, rows):
        with (folder / name).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fields)
            writer.writeheader()
            writer.writerows(rows)

    fields, rows = read("patients.csv")
    keep = {r["Id"] for r in rows[:patients]}
    write("patients.csv", fields, rows[:patients])
    encounter_fields, encounters = read("encounters.csv")
    encounters = [r for r in encounters if r["PATIENT"] in keep]
    write("encounters.csv", encounter_fields, encounters)
    for name in ("conditions.csv", "medications.csv", "observations.csv"):
        fields, rows = read(name)
        write(name, fields, [r for r in rows if r["PATIENT"] in keep])
    providers = {r["PROVIDER"] for r in encounters}
    fields, rows = read("providers.csv")
    rows = [r for r in rows if r["Id"] in providers]
    write("providers.csv", fields, rows)
    organizations = {r["ORGANIZATION"] for r in encounters} | {r["ORGANIZATION"] for r in rows}
    fields, rows = read("organizations.csv")
    write("organizations.csv", fields, [r for r in rows if r["Id"] in organizations])
    return folder


@pytest.fixture
def subset(tmp_path) -> Path:
    return write_subset(tmp_path / "synthea")


@pytest.fixture
def loaded(db, subset) -> Path:
    load_synthea(subset)
    return subset


def legacy_events() -> list[store.RecordedEvent]:
    return [e for e in store.iter_all(0) if e.metadata.get("legacy_table")]


# Volatile or database-assigned values (user ids depend on insertion order, "now" on the clock).
VOLATILE = {"provider_id", "prescriber_id", "recorded_by", "ordering_provider_id", "author_id",
            "signed_by", "discontinued_by", "user_id", "signed_at", "approved_by"}


def fingerprint() -> list[tuple]:
    """Describe the migration's events without what differs between two equal runs."""
    return sorted(
        (str(e.aggregate_id), e.version, e.event_type, e.metadata["legacy_table"],
         e.metadata["legacy_id"], e.metadata.get("effective_time"),
         tuple(sorted((k, str(v)) for k, v in e.data.items() if k not in VOLATILE)))
        for e in legacy_events()
    )


# Loading ----------------------------------------------------------------------------------------

def test_load_subset_counts_rows_and_groups_vitals(loaded):
    assert m.Patient.objects.count() == PATIENTS
    assert m.Encounter.objects.count() > 10
    assert m.LabResult.objects.count() > 0
    vitals = m.VitalSigns.objects.exclude(systolic=None).first()
    assert vitals.diastolic is not None and vitals.heart_rate is not None
    # the patient's clinic is the organization of their first encounter
    assert m.Patient.objects.filter(clinic__isnull=False).count() == PATIENTS


def test_load_is_idempotent(loaded):
    counts = {model: model.objects.count() for model in m.LEGACY_MODELS}
    summary = load_synthea(loaded)
    assert sum(summary.counts.values()) == 0
    assert counts == {model: model.objects.count() for model in m.LEGACY_MODELS}


def test_full_sample_loads(db):
    if not SAMPLE.is_dir():
        pytest.skip(f"the Synthea sample is not at {SAMPLE}")
    summary = load_synthea(SAMPLE)
    assert summary.counts["legacy_patients"] == 59
    assert summary.counts["legacy_lab_results"] > 5000
    assert summary.skipped["observations (survey)"] > 0


def test_missing_required_column_names_file_and_column(db, subset):
    path = subset / "patients.csv"
    text = path.read_text().replace("BIRTHDATE", "BORN")
    path.write_text(text)
    with pytest.raises(CommandError, match=r"patients.csv: required column BIRTHDATE is missing"):
        call_command("legacy", "load-synthea", str(subset), verbosity=0)
    assert m.Patient.objects.count() == 0


def test_malformed_row_names_line_and_column_and_writes_nothing(db, subset):
    path = subset / "observations.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    value_at = header.index("VALUE")
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split(",")
        if len(cells) == len(header) and cells[header.index("TYPE")] == "numeric":
            cells[value_at] = "12,5x".replace(",", "")
            lines[number - 1] = ",".join(cells)
            break
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError, match=rf"observations.csv line {number}, column VALUE: '125x'"):
        call_command("legacy", "load-synthea", str(subset), verbosity=0)
    assert all(model.objects.count() == 0 for model in m.LEGACY_MODELS)


def test_liberal_reader_lower_case_headers_old_names_and_missing_files(db, tmp_path, subset):
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(subset / "patients.csv", folder / "PATIENTS.csv")
    # an older export: lower-case headers, DATE instead of START, no ORGANIZATION column
    with (subset / "encounters.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with (folder / "encounters.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "date", "stop", "patient", "encounterclass", "description"])
        for r in rows:
            writer.writerow([r["Id"], r["START"], r["STOP"], r["PATIENT"], r["ENCOUNTERCLASS"],
                             r["DESCRIPTION"]])
    summary = load_synthea(folder)
    assert summary.counts["legacy_patients"] == PATIENTS
    assert summary.counts["legacy_encounters"] == len(rows)
    assert m.Patient.objects.filter(clinic__isnull=True).count() == PATIENTS


def test_unknown_patient_reference_is_reported(db, subset):
    path = subset / "conditions.csv"
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[2] = str(uuid.uuid4())
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LoadError, match=r"conditions.csv line 2, column PATIENT: unknown patient"):
        load_synthea(subset)


# Migration --------------------------------------------------------------------------------------

def test_migrate_validates_with_zero_mismatches(loaded):
    report = migrate(batch_size=50)
    assert report.refusals == []
    assert report.events > 0
    checked = validate()
    assert checked.ok, checked.text()
    assert checked.tables["legacy_vital_signs"].compared == m.VitalSigns.objects.count()
    assert checked.tables["legacy_lab_results"].compared == m.LabResult.objects.count()


def test_events_carry_legacy_row_and_original_time(loaded):
    migrate()
    vitals = m.VitalSigns.objects.exclude(heart_rate=None).order_by("id").first()
    events = [e for e in legacy_events() if e.metadata["legacy_id"] == vitals.id]
    assert [e.event_type for e in events] == ["VitalSignsRecorded"]
    meta = events[0].metadata
    assert meta["legacy_table"] == "legacy_vital_signs"
    assert meta["reason"] == "legacy migration"
    assert meta["effective_time"] == vitals.measured_at.isoformat()
    # fractional rates are rounded to the whole numbers the domain takes
    assert events[0].data["heart_rate"] == round(vitals.heart_rate)
    encounter = store.load(aggregate_id("legacy_encounters", vitals.encounter_id))
    assert encounter[0].event_type == "EncounterStarted"
    assert encounter[-1].event_type == "EncounterEnded"


def test_rerun_changes_nothing(loaded):
    first = migrate()
    before = fingerprint()
    again = migrate()
    assert again.events == 0 and sum(again.migrated.values()) == 0
    assert sum(again.already.values()) == sum(first.migrated.values())
    assert fingerprint() == before


def test_dry_run_writes_nothing(loaded):
    report = migrate(dry_run=True)
    assert report.events > 0 and report.refusals == []
    assert m.MigrationMap.objects.count() == 0
    assert legacy_events() == []


def test_refused_value_is_reported_and_fails_validation(loaded):
    row = m.VitalSigns.objects.exclude(systolic=None).order_by("id").first()
    m.VitalSigns.objects.filter(id=row.id).update(systolic=900)
    report = migrate()
    assert [(r.table, r.row_id, r.field) for r in report.refusals] == [
        ("legacy_vital_signs", row.id, "systolic")]
    checked = validate()
    assert not checked.ok
    assert [(x.table, x.row_id) for x in checked.mismatches] == [("legacy_vital_signs", row.id)]


def test_validate_finds_a_changed_field_and_the_command_fails(loaded):
    migrate()
    lab = m.LabResult.objects.exclude(value=None).order_by("id").first()
    m.LabResult.objects.filter(id=lab.id).update(value=lab.value + 1)
    checked = validate()
    assert [(x.table, x.row_id, x.field) for x in checked.mismatches] == [
        ("legacy_lab_results", lab.id, "value")]
    with pytest.raises(CommandError, match="1 mismatches"):
        call_command("legacy", "validate", "--json", verbosity=0)


def test_migrate_command_reports_and_validates(loaded, capsys):
    call_command("legacy", "migrate", "--batch-size", "100", verbosity=0)
    out = capsys.readouterr().out
    assert "OK: no mismatch" in out
    assert "legacy_patients: 3 migrated" in out


# Resumability -----------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_killed_migration_rerun_ends_identical_to_uninterrupted(subset):
    load_synthea(subset)
    with transaction.atomic():
        migrate()
        uninterrupted = fingerprint()
        transaction.set_rollback(True)
    assert uninterrupted and legacy_events() == []

    killed = medflow("legacy", "migrate", "--batch-size", "7", failpoint="legacy-after-rows:60")
    assert killed.returncode == 70, killed.stderr
    partial = m.MigrationMap.objects.count()
    assert 0 < partial < 60  # the batch in flight was lost, the committed ones kept

    rerun = medflow("legacy", "migrate", "--batch-size", "7")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "OK: no mismatch" in rerun.stdout
    assert fingerprint() == uninterrupted
    # no stream got an event twice
    seen = [(e.metadata["legacy_table"], e.metadata["legacy_id"], e.event_type) for e in legacy_events()
            if e.event_type not in ("StaffRoleGranted",)]
    assert len(seen) == len(set(seen))
    assert connection.vendor in ("sqlite", "postgresql")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="asynchronous commit is PostgreSQL's")
def test_batches_commit_without_waiting_for_the_disk_and_the_run_ends_flushed(subset,
                                                                              monkeypatch):
    from medflow.legacy import migrate as migration

    load_synthea(subset)
    seen: list[str] = []
    batch = migration.Migrator._batch

    written: list[str] = []

    def spy(self, table, rows):
        seen.append(setting("synchronous_commit"))
        batch(self, table, rows)
        written.append(setting("pg_current_wal_insert_lsn()", show="SELECT"))

    monkeypatch.setattr(migration.Migrator, "_batch", spy)
    # A dry run's one transaction, rolled back, is left as it is, and stores nothing at the end.
    migrate(batch_size=50, dry_run=True)
    assert seen and set(seen) == {"on"}
    assert not m.State.objects.filter(key=migration.FINISHED_KEY).exists()
    seen.clear()
    report = migrate(batch_size=50)
    assert report.events and set(seen) == {"off"}
    # SET LOCAL: the session's own setting is untouched. The run ended with a synchronous
    # commit of a write, which flushed the WAL past every batch's.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", [written[-1]])
        assert cursor.fetchone()[0]
    assert setting("synchronous_commit") == "on"
    assert m.State.objects.filter(key=migration.FINISHED_KEY).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="asynchronous commit is PostgreSQL's")
def test_with_autocommit_off_the_callers_transaction_keeps_its_settings(subset):
    load_synthea(subset)
    connection.set_autocommit(False)
    try:
        assert migrate(batch_size=50).events
        assert setting("synchronous_commit") == "on"
        connection.rollback()  # the caller's transaction held it all
    finally:
        connection.set_autocommit(True)
    assert legacy_events() == []


def setting(name: str, show: str = "SHOW") -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"{show} {name}")
        return str(cursor.fetchone()[0])


def test_the_migration_runs_with_fewer_garbage_collections(loaded, monkeypatch):
    from medflow.legacy import migrate as migration
    from medflow.ops.garbage import BULK_YOUNG_THRESHOLD

    seen, batch = [], migration.Migrator._batch

    def spy(self, table, rows):
        seen.append(gc.get_threshold()[0])
        return batch(self, table, rows)

    monkeypatch.setattr(migration.Migrator, "_batch", spy)
    before = gc.get_threshold()
    assert migrate(batch_size=100).events
    assert seen and set(seen) == {BULK_YOUNG_THRESHOLD}
    assert gc.get_threshold() == before


def test_pages_skip_migrated_rows_and_walk_past_a_page_of_them(loaded):
    rows = m.LabResult.objects.order_by("effective_at", "id")
    ids = list(rows.values_list("id", flat=True))
    done = set(ids[:5]) | set(ids[7:9])
    pages = list(_pages(rows, ("effective_at", "id"), 3, lambda page: done & set(page)))
    assert [row.id for page in pages for row in page] == [i for i in ids if i not in done]
    assert all(pages) and max(len(page) for page in pages) <= 3


def test_notes_file_when_present_becomes_signed_notes(db, subset):
    with (subset / "encounters.csv").open(newline="") as handle:
        visit = next(csv.DictReader(handle))
    (subset / "notes.csv").write_text(
        "DATE,PATIENT,ENCOUNTER,PROVIDER,NOTE\n"
        f"{visit['START']},{visit['PATIENT']},{visit['Id']},{visit['PROVIDER']},\"Well, and growing.\"\n")
    load_synthea(subset)
    note = m.ClinicalNote.objects.get()
    assert (note.text, note.provider_id) == ("Well, and growing.", visit["PROVIDER"])
    report = migrate()
    assert report.refusals == []
    events = [e.event_type for e in legacy_events() if e.metadata["legacy_table"] ==
              "legacy_clinical_notes"]
    assert events == ["NoteDrafted", "NoteSigned"]
    assert validate().ok
