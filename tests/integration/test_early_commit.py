"""A command's BEGIN travels with its append and its COMMIT with its last read-model rows
(PostgreSQL), and every way that can go wrong ends as if each had been sent alone."""

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction

from medflow.context import system_context
from medflow.errors import Conflict, VersionConflict
from medflow.eventstore import pipeline, store
from medflow.eventstore.handlers import inline
from medflow.eventstore.models import Snapshot
from medflow.patients import services
from medflow.patients.models import PatientReadModel
from medflow.patients.services import register_patient, update_patient
from medflow.timeline.models import TimelineEntry
from tests.support.exchanges import forget_prepared

pytestmark = pytest.mark.django_db(transaction=True)


def new_patient(clinic, mrn="E-1"):
    return register_patient(system_context("t"), clinic_id=clinic.id, mrn=mrn, given_names="Ida",
                            family_name="Noddack", birth_date="1896-02-25").aggregate_id


def committed_version(patient_id) -> int:
    """Read the stream's version on a connection of its own: only committed work shows."""
    if connection.vendor != "postgresql":
        return store.current_version(patient_id)
    db = settings.DATABASES["default"]
    with psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"],
                         password=db["PASSWORD"], dbname=db["NAME"]) as other:
        return other.execute("SELECT version FROM streams WHERE aggregate_id = %s",
                             [patient_id]).fetchone()[0]


def test_an_update_is_one_round_trip_and_committed_when_it_returns(clinic, exchanges):
    patient_id = new_patient(clinic)
    # The first update reads the stream's head; the second presumes it from the cache, and
    # prepares the statements the third one runs.
    for version, phone in ((1, "555 0000"), (2, "555 0001")):
        update_patient(system_context("t"), patient_id, {"phone": phone},
                       expected_version=version)
    exchanges.clear()
    result = update_patient(system_context("t"), patient_id, {"phone": "555 0002"},
                            expected_version=3)
    assert result.version == 4 and committed_version(patient_id) == 4
    assert PatientReadModel.objects.get(id=patient_id).current_data["phone"] == "555 0002"
    if connection.vendor == "postgresql":
        # The statements are prepared by now: one round trip carries BEGIN, the append, the
        # read-model rows and COMMIT, and one Sync.
        assert exchanges == [["BEGIN", "EXECUTE", "EXECUTE", "COMMIT", "SYNC"]]
        assert connection.connection.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    else:
        assert exchanges == []


class OuterWorkFailed(Exception):
    pass


def test_a_command_inside_an_outer_transaction_commits_only_with_it(clinic):
    patient_id = new_patient(clinic)
    with pytest.raises(OuterWorkFailed), transaction.atomic():
        update_patient(system_context("t"), patient_id, {"phone": "555 0003"}, expected_version=1)
        raise OuterWorkFailed
    assert committed_version(patient_id) == 1
    assert PatientReadModel.objects.get(id=patient_id).version == 1
    result = update_patient(system_context("t"), patient_id, {"phone": "555 0004"},
                            expected_version=1)
    assert result.version == 2


def test_a_read_model_row_out_of_step_is_mended_before_the_commit(clinic, exchanges):
    patient_id = new_patient(clinic)
    update_patient(system_context("t"), patient_id, {"phone": "555 0005"}, expected_version=1)
    # The row says version 7: the update of the row at version 2 touches nothing, and its
    # fallback (rebuild the row from the stream) must run before anything commits.
    PatientReadModel.objects.filter(id=patient_id).update(version=7)
    exchanges.clear()
    result = update_patient(system_context("t"), patient_id, {"email": "ida@example.org"},
                            expected_version=2)
    assert result.version == 3 and committed_version(patient_id) == 3
    row = PatientReadModel.objects.get(id=patient_id)
    assert row.version == 3 and row.current_data["email"] == "ida@example.org"
    assert [e.version for e in store.load(patient_id)] == [1, 2, 3]
    if connection.vendor == "postgresql":
        # The first attempt was refused at its commit and rolled back; the second sent its
        # append (with BEGIN) alone, and committed on its own after the row's fallback ran.
        assert len(exchanges) == 2 and "COMMIT" in exchanges[0]
        assert exchanges[1][0] == "BEGIN" and "COMMIT" not in exchanges[1]


def test_statements_lost_to_a_rollback_are_prepared_again(clinic):
    patient_id = new_patient(clinic)
    update_patient(system_context("t"), patient_id, {"phone": "555 0006"}, expected_version=1)
    update_patient(system_context("t"), patient_id, {"phone": "555 0007"}, expected_version=2)
    # A refused command rolls back, and psycopg then deallocates every prepared statement.
    with pytest.raises(VersionConflict):
        update_patient(system_context("t"), patient_id, {"phone": "555 0008"},
                       expected_version=1)
    result = update_patient(system_context("t"), patient_id, {"phone": "555 0009"},
                            expected_version=3)
    assert result.version == 4
    forget_prepared()
    result = update_patient(system_context("t"), patient_id, {"phone": "555 0010"},
                            expected_version=4)
    assert result.version == 5 and committed_version(patient_id) == 5
    assert PatientReadModel.objects.get(id=patient_id).current_data["phone"] == "555 0010"


def test_a_row_refused_at_the_commit_leaves_nothing_stored(clinic, monkeypatch):
    new_patient(clinic, mrn="E-2")
    # Skip the service's own check, so that the unique index refuses the second row in the
    # statement that carries the COMMIT.
    monkeypatch.setattr(services, "_check_mrn_free", lambda *args: None)
    before = store.last_position()
    with pytest.raises(Conflict):
        new_patient(clinic, mrn="E-2")
    assert store.last_position() == before
    assert PatientReadModel.objects.filter(mrn="E-2").count() == 1
    assert new_patient(clinic, mrn="E-3")


def test_a_deferred_append_gives_its_rows_the_stored_position_and_time(clinic, exchanges):
    patient_id = new_patient(clinic, mrn="E-4")
    for version in (1, 2, 3):
        update_patient(system_context("t"), patient_id, {"phone": f"555 010{version}"},
                       expected_version=version)
    events = store.load(patient_id)
    entries = {e.position: e for e in TimelineEntry.objects.filter(patient_id=patient_id)}
    assert sorted(entries) == [e.position for e in events]
    for event in events:
        entry = entries[event.position]
        assert (entry.event_id, entry.version, entry.recorded_at) == (
            event.id, event.version, event.timestamp)
    row = PatientReadModel.objects.get(id=patient_id)
    assert (row.version, row.last_updated) == (4, events[-1].timestamp)
    if connection.vendor == "postgresql":
        # Registration and the presumed updates each went in one round trip with COMMIT.
        assert sum("COMMIT" in sent and "EXECUTE" in sent for sent in exchanges) >= 3


def test_only_events_whose_handlers_all_take_pending_values_are_deferred(settings):
    assert inline.takes_pending("PatientUpdated") and inline.takes_pending("PatientRegistered")
    # Forgetting deletes rows through the ORM; other aggregates have projections of their own.
    assert not inline.takes_pending("PatientForgotten")
    assert not inline.takes_pending("TaskAssigned")
    settings.MEDFLOW_DUAL_WRITE = True  # the legacy mirror reads and writes as it likes
    assert not inline.takes_pending("PatientUpdated")


def test_a_command_that_takes_a_snapshot_is_not_deferred(clinic, settings, exchanges):
    settings.MEDFLOW_SNAPSHOT_EVERY_BY_TYPE = {"Patient": 2}
    patient_id = new_patient(clinic, mrn="E-5")
    for version in (1, 2, 3, 4):
        update_patient(system_context("t"), patient_id, {"phone": f"555 020{version}"},
                       expected_version=version)
    assert [s.version for s in Snapshot.objects.filter(aggregate_id=patient_id)] == [2, 4]
    assert PatientReadModel.objects.get(id=patient_id).version == 5


def test_the_pipelined_begin_keeps_the_connections_transaction_settings():
    from types import SimpleNamespace

    plain = SimpleNamespace(isolation_level=None, read_only=None, deferrable=None)
    assert pipeline._begin_command(plain) == b"BEGIN"
    strict = SimpleNamespace(isolation_level=psycopg.IsolationLevel.SERIALIZABLE,
                             read_only=False, deferrable=True)
    assert pipeline._begin_command(strict) == (
        b"BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE DEFERRABLE")


def test_a_command_under_manual_transactions_leaves_the_commit_to_the_caller(clinic):
    patient_id = new_patient(clinic, mrn="E-6")
    other_id = new_patient(clinic, mrn="E-7")
    transaction.set_autocommit(False)
    try:
        PatientReadModel.objects.filter(id=other_id).update(family_name="Caller")
        result = update_patient(system_context("t"), patient_id, {"phone": "555 0300"},
                                expected_version=1)
        assert result.version == 2
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)
    assert committed_version(patient_id) == 1
    assert PatientReadModel.objects.get(id=other_id).family_name == "Noddack"
    assert PatientReadModel.objects.get(id=patient_id).version == 1


def forget_cached(patient_id):
    from medflow.eventstore.cache import cache
    from medflow.eventstore.commands import _cache_key
    from medflow.patients.domain import Patient

    cache.delete(_cache_key(Patient, patient_id))


def test_a_statement_lost_after_the_transaction_began_runs_the_command_again(clinic):
    patient_id = new_patient(clinic, mrn="E-8")
    for version in (1, 2):
        update_patient(system_context("t"), patient_id, {"phone": f"555 040{version}"},
                       expected_version=version)
    # No cache entry: the command reads the stream's head first, and its append, rows and
    # COMMIT go after it, by names the server no longer knows.
    forget_cached(patient_id)
    forget_prepared()
    result = update_patient(system_context("t"), patient_id, {"phone": "555 0403"},
                            expected_version=3)
    assert result.version == 4 and committed_version(patient_id) == 4
    assert PatientReadModel.objects.get(id=patient_id).current_data["phone"] == "555 0403"


def test_a_lost_statement_then_a_missed_row_still_end_in_one_commit(clinic):
    patient_id = new_patient(clinic, mrn="E-9")
    for version in (1, 2):
        update_patient(system_context("t"), patient_id, {"phone": f"555 050{version}"},
                       expected_version=version)
    PatientReadModel.objects.filter(id=patient_id).update(version=7)
    forget_cached(patient_id)
    forget_prepared()
    result = update_patient(system_context("t"), patient_id, {"email": "e9@example.org"},
                            expected_version=3)
    assert result.version == 4 and committed_version(patient_id) == 4
    row = PatientReadModel.objects.get(id=patient_id)
    assert row.version == 4 and row.current_data["email"] == "e9@example.org"


def test_with_preparing_off_nothing_is_prepared_by_name(clinic, exchanges):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are a PostgreSQL matter")
    patient_id = new_patient(clinic, mrn="E-10")
    connection.ensure_connection()
    before = connection.connection.prepare_threshold
    connection.connection.prepare_threshold = None
    try:
        forget_prepared()
        exchanges.clear()
        for version in (1, 2, 3):
            update_patient(system_context("t"), patient_id, {"phone": f"555 060{version}"},
                           expected_version=version)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements"
                           " WHERE name LIKE 'medflow_pipelined%%'")
            assert cursor.fetchone()[0] == 0
    finally:
        connection.connection.prepare_threshold = before
    assert committed_version(patient_id) == 4
    assert not any("PREPARE" in sent for sent in exchanges)
