"""The event store on the configured backend (SQLite always, PostgreSQL when configured)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from medflow.access.domain import ClinicCreated, StaffRoleGranted, StaffRoleRevoked
from medflow.errors import InvalidInput, VersionConflict
from medflow.eventstore import store
from medflow.eventstore.models import StoredEvent, Stream
from medflow.patients.domain import Address, PatientUpdated

pytestmark = pytest.mark.django_db

META = {"user_id": 1, "command": "Test"}


def events(n: int):
    return [ClinicCreated(name="N", code="n")] + [
        StaffRoleGranted(user_id=i, username=f"u{i}", role="nurse") for i in range(n - 1)
    ]


def test_append_then_load_in_version_order():
    stream = uuid.uuid4()
    recorded = store.append(stream, "Clinic", events(3), 0, META)
    assert [r.version for r in recorded] == [1, 2, 3]
    loaded = store.load(stream)
    assert [(e.version, e.event_type) for e in loaded] == [
        (1, "ClinicCreated"), (2, "StaffRoleGranted"), (3, "StaffRoleGranted"),
    ]
    assert [e.position for e in loaded] == [r.position for r in recorded]
    assert loaded[0].metadata["user_id"] == 1 and loaded[0].metadata["schema_version"] == 1
    assert loaded[1].event == StaffRoleGranted(user_id=0, username="u0", role="nurse")
    assert Stream.objects.get(aggregate_id=stream).version == 3


def test_seed_table_shape_is_kept():
    stream = uuid.uuid4()
    store.append(stream, "Clinic", events(1), 0, META)
    row = StoredEvent.objects.get(aggregate_id=stream)
    assert (row.aggregate_type, row.event_type, row.version) == ("Clinic", "ClinicCreated", 1)
    assert row.event_data == {"name": "N", "code": "n"}
    assert StoredEvent._meta.db_table == "event_store"


def test_stale_expected_version_raises_and_writes_nothing():
    stream = uuid.uuid4()
    store.append(stream, "Clinic", events(2), 0, META)
    before = StoredEvent.objects.count()
    with pytest.raises(VersionConflict) as err, transaction.atomic():
        store.append(stream, "Clinic", [StaffRoleRevoked(user_id=0)], 1, META)
    assert (err.value.expected, err.value.actual) == (1, 2)
    with pytest.raises(VersionConflict), transaction.atomic():
        store.append(stream, "Clinic", events(1), 0, META)
    assert StoredEvent.objects.count() == before
    assert Stream.objects.get(aggregate_id=stream).version == 2


def test_append_is_atomic_for_all_events_of_a_call():
    stream = uuid.uuid4()
    store.append(stream, "Clinic", events(1), 0, META)
    with pytest.raises(VersionConflict), transaction.atomic():
        store.append(stream, "Clinic", events(3), 0, META)
    assert [e.version for e in store.load(stream)] == [1]


def test_load_to_version_and_as_of():
    stream = uuid.uuid4()
    store.append(stream, "Clinic", events(2), 0, META)
    middle = datetime.now(UTC)
    store.append(stream, "Clinic", [StaffRoleRevoked(user_id=0)], 2, META)
    assert [e.version for e in store.load(stream, to_version=2)] == [1, 2]
    assert [e.version for e in store.load(stream, as_of=middle)] == [1, 2]
    assert store.load(stream, as_of=middle - timedelta(days=1)) == []
    assert [e.version for e in store.load(stream, after_version=2)] == [3]


def test_read_all_is_the_global_log_in_order():
    start = store.last_position()
    a, b = uuid.uuid4(), uuid.uuid4()
    store.append(a, "Clinic", events(2), 0, META)
    store.append(b, "Clinic", events(1), 0, META)
    store.append(a, "Clinic", [StaffRoleRevoked(user_id=0)], 2, META)
    log = store.read_all(after=start, limit=10)
    assert [(e.aggregate_id, e.version) for e in log] == [(a, 1), (a, 2), (b, 1), (a, 3)]
    assert [e.position for e in log] == sorted(e.position for e in log)
    assert [e.version for e in store.read_all(after=log[1].position, limit=1)] == [1]
    assert len(list(store.iter_all(after=start, batch=2))) == 4


def test_large_batches_span_insert_chunks():
    stream = uuid.uuid4()
    recorded = store.append(stream, "Clinic", events(1201), 0, META)
    assert [r.version for r in recorded] == list(range(1, 1202))
    positions = [r.position for r in recorded]
    assert positions == sorted(positions) and len(set(positions)) == 1201
    assert [e.position for e in store.load(stream)] == positions


def test_invalid_stored_payload_is_reported_on_read():
    stream = uuid.uuid4()
    store.append(stream, "Clinic", events(1), 0, META)
    # Corrupt the payload behind the store's back, as a bad manual edit would.
    StoredEvent.objects.filter(aggregate_id=stream).update(event_data={"name": "N"})
    with pytest.raises(InvalidInput) as err:
        store.load(stream)
    assert err.value.field == "code"


def test_backend_settings(backend):
    if backend == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
            cursor.execute("PRAGMA synchronous")
            assert cursor.fetchone()[0] == 2  # FULL
    else:
        assert backend == "postgresql"


def test_a_read_events_data_is_its_payload_as_recorded():
    stream = uuid.uuid4()
    (recorded,) = store.append(stream, "Patient", [PatientUpdated(
        phone="+1 555 0100", email="ada@example.org", address=Address(lines=["1 Main St"]))],
        0, META)
    (loaded,) = store.load(stream)
    # Its sealed fields opened (kept as read on PostgreSQL, dumped again elsewhere).
    assert loaded.data == recorded.data == loaded.event.payload()
    assert loaded.data["phone"] == "+1 555 0100" and "_sealed" not in loaded.data
