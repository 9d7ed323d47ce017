"""A command's read-model row writes travel together (PostgreSQL), and are seen in order."""

from datetime import UTC, date, datetime
from uuid import uuid4

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from medflow.context import system_context
from medflow.eventstore import combined
from medflow.patients.models import PatientReadModel
from medflow.patients.services import register_patient, update_patient
from medflow.projections.bulk import insert_rows
from medflow.projections.models import Checkpoint, EventCount
from medflow.projections.rowsql import insert_row, update_row
from medflow.timeline.models import TimelineEntry

pytestmark = pytest.mark.django_db

DAY = date(2026, 12, 7)
NOW = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries]


def together() -> bool:
    return connection.vendor == "postgresql"


def test_writes_to_two_tables_reach_the_server_as_one_statement():
    with CaptureQueriesContext(connection) as queries, combined.combined():
        insert_row(Checkpoint, {"name": "a", "position": 1, "updated_at": NOW})
        insert_row(EventCount, {"event_type": "X", "day": DAY, "count": 3})
    sent = statements(queries)
    if together():
        assert len(sent) == 1 and sent[0].startswith("WITH w0 AS (INSERT")
    else:
        assert len(sent) == 2  # SQLite runs in the process: no round trip to save
    assert Checkpoint.objects.get(name="a").position == 1
    assert EventCount.objects.get(event_type="X").count == 3


def test_a_read_inside_the_scope_sees_every_write_sent_before_it():
    with combined.combined():
        insert_row(Checkpoint, {"name": "a", "position": 1, "updated_at": NOW})
        assert Checkpoint.objects.get(name="a").position == 1
        update_row(Checkpoint, {"name": "a", "position": 2})
        assert Checkpoint.objects.values_list("position", flat=True).get(name="a") == 2


def test_two_writes_to_one_table_are_not_combined_so_the_second_sees_the_first():
    with CaptureQueriesContext(connection) as queries, combined.combined():
        insert_row(Checkpoint, {"name": "a", "position": 1, "updated_at": NOW})
        update_row(Checkpoint, {"name": "a", "position": 5}, where={"position": 1})
    assert len(statements(queries)) == 2
    assert Checkpoint.objects.get(name="a").position == 5


def test_on_miss_runs_after_the_writes_only_for_an_update_that_matched_no_row():
    Checkpoint.objects.create(name="a", position=1)
    missed = []
    with combined.combined():
        update_row(Checkpoint, {"name": "a", "position": 2}, where={"position": 1},
                   on_miss=lambda: missed.append("first"))
        update_row(EventCount, {"id": 99, "count": 1}, on_miss=lambda: missed.append("absent"))
        update_row(Checkpoint, {"name": "a", "position": 3}, where={"position": 7},
                   on_miss=lambda: missed.append(
                       Checkpoint.objects.values_list("position", flat=True).get(name="a")))
    # The fallback of a missed write sees the writes sent with it.
    assert missed == ["absent", 2]
    # Outside a scope the write and its fallback run at once.
    update_row(Checkpoint, {"name": "a", "position": 4}, where={"position": 9},
               on_miss=lambda: missed.append("now"))
    assert missed == ["absent", 2, "now"]


def test_an_error_inside_the_scope_sends_nothing_that_was_waiting():
    with (CaptureQueriesContext(connection) as queries, pytest.raises(RuntimeError),
          transaction.atomic(), combined.combined()):
        insert_row(Checkpoint, {"name": "a", "position": 1, "updated_at": NOW})
        raise RuntimeError("the handler failed")
    assert not Checkpoint.objects.filter(name="a").exists()
    if together():
        assert not any("projection_checkpoint" in sql for sql in statements(queries))


def test_a_rollback_to_a_savepoint_drops_the_writes_made_after_it_and_keeps_the_others():
    with CaptureQueriesContext(connection) as queries, combined.combined():
        insert_row(Checkpoint, {"name": "kept", "position": 1, "updated_at": NOW})
        with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint
            insert_row(Checkpoint, {"name": "undone", "position": 2, "updated_at": NOW})
            raise RuntimeError("the handler failed")
        insert_row(EventCount, {"event_type": "Z", "day": DAY, "count": 1})
    assert set(Checkpoint.objects.values_list("name", flat=True)) == {"kept"}
    assert EventCount.objects.filter(event_type="Z").exists()
    if together():
        assert not any("undone" in sql for sql in statements(queries))


def test_a_copy_sends_the_waiting_writes_first():
    with combined.combined():
        insert_row(Checkpoint, {"name": "a", "position": 1, "updated_at": NOW})
        insert_rows(EventCount, [{"event_type": "Y", "day": DAY, "count": 1}])
        # COPY passes no execute wrapper: insert_rows itself sent what was waiting.
        assert not combined._waiting.get() or not combined._waiting.get().writes
    assert Checkpoint.objects.filter(name="a").exists() and EventCount.objects.filter(event_type="Y").exists()


def _register():
    return register_patient(
        system_context(), clinic_id=uuid4(), mrn=f"C-{uuid4().hex[:8]}", given_names="Ada",
        family_name="Lovelace", birth_date=date(1980, 1, 1), phone="+1 555 0100000",
    )


def test_a_command_sends_its_patient_row_and_timeline_entry_in_one_statement():
    patient = _register()
    with CaptureQueriesContext(connection) as queries:
        result = update_patient(system_context(), patient.aggregate_id, {"phone": "+1 555 0199"},
                                expected_version=1)
    sent = statements(queries)
    writes = [sql for sql in sent if "patient_read_model" in sql or "patient_timeline" in sql]
    if together():
        assert len(writes) == 1 and writes[0].startswith("WITH w0 AS (UPDATE")
        assert "patient_timeline" in writes[0]
    else:
        assert len(writes) == 2
    row = PatientReadModel.objects.get(id=patient.aggregate_id)
    assert (row.version, row.current_data["phone"]) == (result.version, "+1 555 0199")
    assert TimelineEntry.objects.filter(patient_id=patient.aggregate_id).count() == 2


def test_a_patient_row_behind_its_stream_is_folded_forward_after_the_combined_write():
    patient = _register()
    update_patient(system_context(), patient.aggregate_id, {"phone": "+1 555 0101"},
                   expected_version=1)
    # The row misses the second event (as if an older copy had been restored): the fast UPDATE
    # matches nothing, and the fallback folds the third event into what the row holds.
    PatientReadModel.objects.filter(id=patient.aggregate_id).update(version=1)
    update_patient(system_context(), patient.aggregate_id, {"given_names": "Augusta"},
                   expected_version=2)
    row = PatientReadModel.objects.get(id=patient.aggregate_id)
    assert (row.version, row.given_names, row.current_data["phone"]) == (3, "Augusta",
                                                                       "+1 555 0101")
