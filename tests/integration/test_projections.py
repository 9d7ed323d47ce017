"""Catch-up projections, checkpoints, crash safety, status, and rebuild by shadow-and-swap."""

import gc
import threading
import uuid

import pytest
from django.db import connections

from medflow.access.domain import ClinicCreated, StaffRoleGranted
from medflow.context import system_context
from medflow.eventstore import store
from medflow.patients.models import PatientReadModel
from medflow.patients.services import register_patient, update_patient
from medflow.projections import runner
from medflow.projections.catalog import all_projections, get
from medflow.projections.models import Checkpoint, EventCount
from medflow.projections.rebuild import rebuild
from tests.support.subprocess_db import medflow

pytestmark = pytest.mark.django_db(transaction=True)


def total_counted() -> int:
    return sum(EventCount.objects.values_list("count", flat=True))


def append_clinics(n: int) -> None:
    for _ in range(n):
        store.append(uuid.uuid4(), "Clinic", [ClinicCreated(name="N", code="n")], 0, {})


def test_catalog_names_inline_and_catch_up_projections():
    projections = all_projections()
    assert projections["patients"].kind == "inline"
    assert PatientReadModel in projections["patients"].tables
    assert projections["event_counts"].kind == "catch-up"
    with pytest.raises(KeyError, match="known"):
        get("nope")


def test_run_once_applies_a_batch_and_moves_the_checkpoint():
    append_clinics(7)
    projection = get("event_counts")
    assert runner.run_once(projection, batch=5) == 5
    assert Checkpoint.objects.get(name="event_counts").position == store.read_all(0, 5)[-1].position
    assert runner.catch_up(projection, batch=5) == 2
    assert total_counted() == 7 == store.last_position() - store.read_all(0, 1)[0].position + 1
    assert runner.run_once(projection) == 0


def test_killed_worker_replays_nothing_twice():
    append_clinics(30)
    killed = medflow("projections", "run", "event_counts", "--once", "--batch", "20",
                     failpoint="projection-after-apply:15")
    assert killed.returncode == 70
    assert total_counted() == 0  # the half-applied batch rolled back with its checkpoint
    first = medflow("projections", "run", "event_counts", "--once", "--batch", "20",
                    failpoint="projection-after-apply:25")
    assert first.returncode == 0, first.stderr  # batches of 20 and 10 never reach 25
    assert total_counted() == 30
    assert medflow("projections", "run", "event_counts", "--once").returncode == 0
    assert total_counted() == 30


def test_no_event_skipped_under_concurrent_writers():
    projection = get("event_counts")
    done = threading.Event()

    def writer():
        try:
            for _ in range(40):
                stream = uuid.uuid4()
                store.append(stream, "Clinic", [ClinicCreated(name="N", code="n")], 0, {})
                store.append(stream, "Clinic",
                             [StaffRoleGranted(user_id=1, username="u", role="nurse")], 1, {})
        finally:
            connections.close_all()

    def worker():
        try:
            while not done.is_set():
                runner.run_once(projection, batch=7)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer) for _ in range(3)]
    poller = threading.Thread(target=worker)
    poller.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    poller.join(60)
    runner.catch_up(projection)
    assert total_counted() == 240
    counts = dict(EventCount.objects.values_list("event_type", "count"))
    assert counts == {"ClinicCreated": 120, "StaffRoleGranted": 120}


def test_status_reports_lag_and_errors():
    append_clinics(3)
    rows = {r.name: r for r in runner.status()}
    assert rows["event_counts"].lag_events == 3 and rows["event_counts"].lag_seconds >= 0
    assert rows["patients"].lag_events == 0
    runner.catch_up(get("event_counts"))
    assert {r.name: r for r in runner.status()}["event_counts"].lag_events == 0
    out = medflow("projections", "status")
    assert out.returncode == 0 and "event_counts" in out.stdout and "patients" in out.stdout


def _patients(n: int, clinic_id) -> list:
    ctx = system_context("test")
    ids = [register_patient(ctx, clinic_id=clinic_id, mrn=f"R-{i}", given_names="Rosa",
                            family_name=f"Parks{i}", birth_date="1913-02-04").aggregate_id
           for i in range(n)]
    for pid in ids[:3]:
        update_patient(ctx, pid, {"phone": "555 0100"}, expected_version=1)
    return ids


def _snapshot_rows():
    return sorted(PatientReadModel.objects.values_list(
        "id", "mrn", "family_name", "current_data", "version", "last_updated"), key=str)


def test_rebuild_restores_a_damaged_read_model(clinic):
    _patients(10, clinic.id)
    expected = _snapshot_rows()
    PatientReadModel.objects.filter(mrn="R-1").update(family_name="Wrong", version=99)
    PatientReadModel.objects.filter(mrn="R-2").delete()
    replayed = rebuild(get("patients"), batch=4)
    assert replayed >= 13
    assert _snapshot_rows() == expected


def test_rebuild_pages_run_with_fewer_garbage_collections(clinic, monkeypatch):
    from medflow.ops.garbage import BULK_YOUNG_THRESHOLD
    from medflow.projections import rebuild as rebuilding

    _patients(3, clinic.id)
    seen, apply_page = [], rebuilding._apply_page

    def spy(*args, **kwargs):
        seen.append(gc.get_threshold()[0])
        return apply_page(*args, **kwargs)

    monkeypatch.setattr(rebuilding, "_apply_page", spy)
    before = gc.get_threshold()
    rebuild(get("patients"), batch=2)
    # The swap's own catch-up page runs outside the replay: the thresholds are back by then.
    assert seen[:-1] and set(seen[:-1]) == {BULK_YOUNG_THRESHOLD}
    assert gc.get_threshold() == before


def test_rebuild_under_concurrent_writers_loses_no_event(clinic, monkeypatch):
    """Writers append while the shadow is built, its pages read ahead by a thread on
    PostgreSQL: what the rebuild leaves (with what was written inline since) equals what a
    second, quiet rebuild gives."""
    from medflow.projections import prefetch
    from medflow.projections import rebuild as rebuilding

    ids = _patients(20, clinic.id)
    ahead, take = [], prefetch.PageReader.take

    def spy_take(self, after, window):
        ahead.append(self.reading_ahead)
        return take(self, after, window)

    def write():
        ctx = system_context("writer")
        try:
            for i, pid in enumerate(ids[3:15]):
                register_patient(ctx, clinic_id=clinic.id, mrn=f"W-{i}", given_names="Wanda",
                                 family_name=f"Writer{i}", birth_date="1990-01-01")
                update_patient(ctx, pid, {"phone": f"555 02{i:02d}"}, expected_version=1)
        finally:
            connections.close_all()

    writer = threading.Thread(target=write)
    apply_page = rebuilding._apply_page

    def start_writer_with_the_first_page(*args, **kwargs):
        if not writer.is_alive() and writer.ident is None:
            writer.start()
        return apply_page(*args, **kwargs)

    monkeypatch.setattr(prefetch.PageReader, "take", spy_take)
    monkeypatch.setattr(rebuilding, "_apply_page", start_writer_with_the_first_page)
    rebuild(get("patients"), batch=2)
    writer.join(60)
    monkeypatch.undo()
    after_first = _snapshot_rows()
    assert len(after_first) == 32
    rebuild(get("patients"), batch=50)
    assert _snapshot_rows() == after_first
    if connections["default"].vendor == "postgresql":
        assert ahead and ahead[0] is True
    else:
        assert ahead == []  # SQLite reads each page when it needs it


def test_a_rebuild_that_fails_midway_stops_its_page_reader_and_resumes(clinic, monkeypatch):
    from medflow.projections import rebuild as rebuilding

    _patients(12, clinic.id)
    expected = _snapshot_rows()
    apply_page, pages = rebuilding._apply_page, []

    def fail_on_the_third_page(*args, **kwargs):
        pages.append(1)
        if len(pages) == 3:
            raise RuntimeError("disk full")
        return apply_page(*args, **kwargs)

    monkeypatch.setattr(rebuilding, "_apply_page", fail_on_the_third_page)
    with pytest.raises(RuntimeError, match="disk full"):
        rebuild(get("patients"), batch=2)
    assert "medflow-page-reader" not in {t.name for t in threading.enumerate()}
    monkeypatch.undo()
    # The two pages before the failure stay applied: the rerun goes on from there.
    assert Checkpoint.objects.get(name="rebuild:patients").position > 0
    rebuild(get("patients"), batch=2)
    assert _snapshot_rows() == expected


def test_rebuild_removes_rows_no_event_made_and_leaves_equal_rows_unwritten(clinic):
    _patients(6, clinic.id)
    expected = _snapshot_rows()
    stray = PatientReadModel.objects.get(mrn="R-3")
    stray.pk, stray.mrn = uuid.uuid4(), "STRAY"
    stray.save(force_insert=True)
    PatientReadModel.objects.filter(mrn="R-1").update(family_name="Wrong")
    before = _row_versions()
    rebuild(get("patients"), batch=4)
    assert _snapshot_rows() == expected
    after = _row_versions()
    changed = {mrn for mrn in after if after[mrn] != before.get(mrn)}
    # Only the damaged row was written again (on PostgreSQL its xmin tells).
    assert changed == ({"R-1"} if connections["default"].vendor == "postgresql" else set())


def _row_versions() -> dict:
    if connections["default"].vendor != "postgresql":
        return {}
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT mrn, xmin::text FROM patient_read_model")
        return dict(cursor.fetchall())


def test_rebuild_copes_with_live_rows_that_swapped_a_unique_value(clinic):
    _patients(4, clinic.id)
    expected = _snapshot_rows()
    first, second = (PatientReadModel.objects.get(mrn=m) for m in ("R-1", "R-2"))
    PatientReadModel.objects.filter(pk=first.pk).update(mrn="TEMP")
    PatientReadModel.objects.filter(pk=second.pk).update(mrn="R-1")
    PatientReadModel.objects.filter(pk=first.pk).update(mrn="R-2")
    rebuild(get("patients"), batch=4)
    assert _snapshot_rows() == expected


def test_killed_rebuild_leaves_live_rows_alone_and_resumes(clinic):
    _patients(12, clinic.id)
    expected = _snapshot_rows()
    PatientReadModel.objects.filter(mrn="R-1").update(family_name="Wrong")
    killed = medflow("projections", "rebuild", "patients", "--batch", "5",
                     failpoint="rebuild-after:5")
    assert killed.returncode == 70
    # Readers still see the live table, untouched by the half-built shadow.
    assert PatientReadModel.objects.get(mrn="R-1").family_name == "Wrong"
    assert Checkpoint.objects.get(name="rebuild:patients").position > 0
    register_patient(system_context("t"), clinic_id=clinic.id, mrn="LATE", given_names="Late",
                     family_name="Comer", birth_date="2000-01-01")
    resumed = medflow("projections", "rebuild", "patients", "--batch", "5")
    assert resumed.returncode == 0, resumed.stderr
    rows = _snapshot_rows()
    assert [r for r in rows if r[1] != "LATE"] == expected
    assert PatientReadModel.objects.filter(mrn="LATE").exists()
    assert not Checkpoint.objects.filter(name="rebuild:patients").exists()


def test_rebuild_of_a_catch_up_projection_moves_its_checkpoint():
    append_clinics(5)
    runner.catch_up(get("event_counts"))
    EventCount.objects.update(count=1000)
    rebuild(get("event_counts"))
    assert total_counted() == 5
    assert Checkpoint.objects.get(name="event_counts").position == store.last_position()
    append_clinics(2)
    # A new row after the swap: its id must not collide with the copied ones.
    store.append(uuid.uuid4(), "Clinic", [StaffRoleGranted(user_id=1, username="u", role="nurse")],
                 0, {})
    runner.catch_up(get("event_counts"))
    assert total_counted() == 8


def test_cli_rebuild_all_and_errors():
    assert medflow("projections", "rebuild", "--all").returncode == 0
    bad = medflow("projections", "rebuild", "nope")
    assert bad.returncode != 0 and "no projection 'nope'" in bad.stderr
    assert "inline" in medflow("projections", "run", "patients", "--once").stderr


def _set_number(table: str, mrn: str, number: str) -> None:
    """Put `"n": <number>` into a patient row's JSON, the number written as given."""
    with connections["default"].cursor() as cursor:
        if connections["default"].vendor == "postgresql":
            cursor.execute(f"UPDATE {table} SET current_data = jsonb_set(current_data, '{{n}}',"
                           " %s::jsonb) WHERE mrn = %s", [number, mrn])
        else:
            cursor.execute(f"UPDATE {table} SET current_data = json_set(current_data, '$.n',"
                           " json(%s)) WHERE mrn = %s", [number, mrn])


def test_a_json_number_of_another_type_is_a_difference_and_the_swap_writes_it(clinic):
    # PostgreSQL's jsonb equality says 1 = 1.0; a reader gets an int from one, a float from the
    # other: verify must report it, and a rebuild's swap must write the replay's.
    from medflow.projections.rebuild import (
        _copy_differences,
        build_shadow,
        differences,
        drop_shadows,
    )

    _patients(2, clinic.id)
    projection = get("patients")
    build_shadow(projection, restart=True)
    try:
        shadow = "patient_read_model__rebuild"
        for table, first, second in ((shadow, "1.0", "2"), ("patient_read_model", "1", "2")):
            _set_number(table, "R-1", first)
            _set_number(table, "R-0", second)
        r1 = PatientReadModel.objects.get(mrn="R-1")
        assert dict(differences(PatientReadModel)) == {str(r1.id): "differs"}
        with connections["default"].cursor() as cursor:
            _copy_differences(cursor, [PatientReadModel])
        assert isinstance(PatientReadModel.objects.get(mrn="R-1").current_data["n"], float)
        assert PatientReadModel.objects.get(mrn="R-0").current_data["n"] == 2
        assert differences(PatientReadModel) == []
    finally:
        drop_shadows(projection)
