"""An append of more events than one statement carries goes to PostgreSQL in one exchange of
several statements, each sent as soon as its events are sealed (eventstore.pipeline, streamed);
on SQLite the same calls store the same."""

import time
import uuid

import pytest
from django.db import DataError, ProgrammingError, connection, transaction

from medflow.errors import RuleViolated, VersionConflict
from medflow.eventstore import crypto, pipeline, sealing, store
from medflow.eventstore.models import StoredEvent, Stream
from medflow.patients.domain import PatientUpdated
from medflow.scheduling.domain import AppointmentCancelled
from tests.support.exchanges import forget_prepared

pytestmark = pytest.mark.django_db

META = {"username": "t"}
# Three statements: two full ones and a part.
COUNT = store.STREAM_CHUNK * 2 + store.STREAM_CHUNK // 2


def phones(count: int, start: int = 0) -> list[PatientUpdated]:
    return [PatientUpdated(phone=f"+1 555 {start + index:07d}") for index in range(count)]


def stored(stream) -> list[tuple]:
    return [(e.position, e.version, e.timestamp, e.event) for e in store.load(stream)]


def test_a_long_append_is_stored_whole_in_order_and_sent_as_each_part_is_sealed(exchanges):
    stream = uuid.uuid4()
    recorded = store.append(stream, "Patient", phones(COUNT), 0, META)
    assert [r.version for r in recorded] == list(range(1, COUNT + 1))
    first = recorded[0].position
    # Consecutive positions (the global-order lock is held from the first statement), one time.
    assert [r.position for r in recorded] == list(range(first, first + COUNT))
    assert len({r.timestamp for r in recorded}) == 1
    # What was returned is what the log holds, the sealed phone numbers opened again.
    assert stored(stream) == [(r.position, r.version, r.timestamp, r.event) for r in recorded]
    assert store.load(stream)[-1].event.phone == f"+1 555 {COUNT - 1:07d}"
    if connection.vendor == "postgresql":
        # One exchange: three statements, each sent in a part of its own, then the Sync.
        assert exchanges[-1].count("EXECUTE") == 3
        assert exchanges.parts[-1] == 4


@pytest.mark.parametrize("head", ["new stream", "moved on"])
def test_a_long_append_to_a_stream_that_moved_on_writes_nothing(head):
    stream = uuid.uuid4()
    store.append(stream, "Patient", phones(2), 0, META)
    expected = 0 if head == "new stream" else 1
    before = StoredEvent.objects.count()
    with pytest.raises(VersionConflict), transaction.atomic():
        store.append(stream, "Patient", phones(COUNT, 10), expected, META)
    assert StoredEvent.objects.count() == before
    assert store.append(stream, "Patient", phones(COUNT, 10), 2, META)[-1].version == COUNT + 2


def test_a_long_append_for_a_subject_with_a_key_seals_with_the_stored_key():
    stream = uuid.uuid4()
    crypto.key_for_writing(stream)  # the patient's key exists before its stream does
    store.append(stream, "Patient", phones(COUNT), 0, META)
    assert [e.event.phone for e in store.load(stream)] == [e.phone for e in phones(COUNT)]


def test_a_long_append_for_a_forgotten_subject_is_refused_before_anything_is_sent():
    stream = uuid.uuid4()
    store.append(stream, "Patient", phones(1), 0, META)
    crypto.destroy(stream)
    with pytest.raises(RuleViolated), transaction.atomic():
        store.append(stream, "Patient", phones(COUNT), 1, META)
    assert store.current_version(stream) == 1


def test_an_error_while_sealing_a_later_part_stores_nothing_and_the_connection_goes_on(
        monkeypatch):
    stream = uuid.uuid4()
    real, calls = sealing.seal, [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] == store.STREAM_CHUNK + 10:  # in the second statement's events
            raise RuntimeError("sealing failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(sealing, "seal", failing)
    with pytest.raises(RuntimeError, match="sealing failed"), transaction.atomic():
        store.append(stream, "Patient", phones(COUNT), 0, META)
    monkeypatch.setattr(sealing, "seal", real)
    assert StoredEvent.objects.filter(aggregate_id=stream).count() == 0
    assert store.append(stream, "Patient", phones(COUNT), 0, META)[-1].version == COUNT


@pytest.mark.django_db(transaction=True)
def test_a_long_append_after_its_prepared_statements_were_lost():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are a PostgreSQL matter")
    first, second = uuid.uuid4(), uuid.uuid4()
    store.append(first, "Patient", phones(COUNT), 0, META)  # prepares them by name
    forget_prepared()
    # Its own transaction: BEGIN travels with it, and a lost name is prepared again.
    store.append(first, "Patient", phones(COUNT), COUNT, META)
    forget_prepared()
    # Inside a transaction begun before: the statements go unnamed.
    with transaction.atomic():
        store.current_version(second)
        store.append(second, "Patient", phones(COUNT), 0, META)
    assert (store.current_version(first), store.current_version(second)) == (2 * COUNT, COUNT)


def test_a_long_batch_over_several_streams_keeps_list_order_and_makes_the_keys_first(exchanges):
    streams = [uuid.uuid4() for _ in range(3)]
    per_stream = COUNT // 3 + 1
    items = [store.StreamEvent(streams[index % 3], "Patient", event, {"n": index})
             for index, event in enumerate(phones(per_stream * 3))]
    recorded = store.append_batch(items, dict.fromkeys(streams, 0))
    assert [r.metadata["n"] for r in recorded] == list(range(len(items)))
    first = recorded[0].position
    assert [r.position for r in recorded] == list(range(first, first + len(items)))
    for stream in streams:
        assert [e.version for e in store.load(stream)] == list(range(1, per_stream + 1))
    # Each patient's key was made for the batch, and opens its events.
    assert store.load(streams[2])[-1].event.phone == items[-1].event.phone
    if connection.vendor == "postgresql":
        inserts = exchanges[-1]
        assert inserts.count("EXECUTE") == -(-len(items) // store.STREAM_CHUNK)
        assert exchanges.parts[-1] == inserts.count("EXECUTE") + 1


def test_a_statement_run_while_the_parts_are_made_is_refused(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL exchange")
    # Were the patients' keys not made before the inserts' exchange, sealing would look them up
    # inside it: refused, not left waiting for the connection the exchange holds.
    monkeypatch.setattr(store, "_fetch_missing_keys", lambda events, keys: None)
    items = [store.StreamEvent(uuid.uuid4(), "Patient", event, {}) for event in phones(COUNT)]
    with pytest.raises(RuntimeError, match="streamed exchange"), transaction.atomic():
        store.append_batch(items, {item.aggregate_id: 0 for item in items})
    assert not StoredEvent.objects.filter(aggregate_id=items[0].aggregate_id).exists()


def test_a_forgotten_patients_events_without_personal_data_still_append():
    # A cancellation without a reason carries nothing sealed: no key is needed, so a patient
    # forgotten since may still have it recorded.
    patient = uuid.uuid4()
    store.append(patient, "Patient", phones(1), 0, META)
    crypto.destroy(patient)
    cancelled = [AppointmentCancelled(patient_id=patient) for _ in range(COUNT)]
    stream = uuid.uuid4()
    assert store.append(stream, "Appointment", cancelled, 0, META)[-1].version == COUNT
    items = [store.StreamEvent(uuid.uuid4(), "Appointment", event, {}) for event in cancelled]
    store.append_batch(items, {item.aggregate_id: 0 for item in items})
    assert StoredEvent.objects.filter(aggregate_id=items[-1].aggregate_id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_statement_repeated_in_one_exchange_is_prepared_once(exchanges):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are a PostgreSQL matter")
    connection.ensure_connection()
    pipeline._prepared.pop(connection.connection, None)  # as on a new connection
    store.append(uuid.uuid4(), "Patient", phones(COUNT), 0, META)
    # The first statement and the one each later part repeats: two names, each used again.
    assert exchanges[-1].count("PREPARE") == 2
    store.append(uuid.uuid4(), "Patient", phones(COUNT), 0, META)
    assert exchanges[-1].count("PREPARE") == 0


def test_a_part_that_cannot_be_sent_ends_the_exchange_and_the_connection_goes_on():
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL exchange")
    stream = uuid.uuid4()

    def statements():
        yield ("INSERT INTO streams (aggregate_id, aggregate_type, version, created_at,"
               " updated_at) VALUES (%s, 'X', 1, now(), now())", [stream], False)
        yield "SELECT %s", [object()], False  # no adapter for it

    with pytest.raises(ProgrammingError, match="cannot adapt"), transaction.atomic():
        pipeline.run_many(statements(), streamed=True)
    assert not Stream.objects.filter(aggregate_id=stream).exists()


def test_a_server_error_in_a_stream_stops_it_and_is_the_error_raised():
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL exchange")
    made = []

    def statements():
        for index in range(50):
            made.append(index)
            yield "SELECT 1 / %s", [0 if index == 0 else 1], False
            time.sleep(0.05)  # time for the first one's error to come back
        raise RuntimeError("not reached: the stream stops at the error")

    with pytest.raises(DataError, match="division by zero"), transaction.atomic():
        pipeline.run_many(statements(), streamed=True)
    assert len(made) < 50
