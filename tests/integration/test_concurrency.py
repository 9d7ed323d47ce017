"""Concurrent writers: one stream's optimistic concurrency, and no skipped event in the global log.

These tests use real threads, each with its own database connection, so they need committed
transactions (transaction=True).
"""

import threading
import time
import uuid

import pytest
from django.db import connections, transaction

from medflow.access.domain import ClinicCreated, StaffRoleGranted
from medflow.errors import VersionConflict
from medflow.eventstore import store

pytestmark = pytest.mark.django_db(transaction=True)

META = {"command": "Test"}


def in_thread(target, results, key):
    def run():
        try:
            results[key] = target()
        except Exception as exc:
            results[key] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_two_writers_on_one_stream_exactly_one_wins():
    stream = uuid.uuid4()
    store.append(stream, "Clinic", [ClinicCreated(name="N", code="n")], 0, META)
    barrier = threading.Barrier(2)
    results: dict = {}

    def writer(n):
        def write():
            # Both writers read version 1, then race to append on top of it.
            barrier.wait(timeout=10)
            with transaction.atomic():
                return store.append(
                    stream, "Clinic",
                    [StaffRoleGranted(user_id=n, username=f"u{n}", role="nurse")], 1, META,
                )
        return write

    threads = [in_thread(writer(n), results, n) for n in (1, 2)]
    for thread in threads:
        thread.join(30)
    outcomes = sorted(type(r).__name__ for r in results.values())
    assert outcomes == ["VersionConflict", "list"]
    assert [e.version for e in store.load(stream)] == [1, 2]


def test_reader_never_skips_an_event_that_commits_late():
    """Hold writer A open after it inserted; let B commit; a polling reader must still get A.

    Without the global-order lock, B's higher position would be visible first, the reader's
    checkpoint would pass A's position, and A would be skipped forever when it committed.
    """
    start = store.last_position()
    a_inserted, release_a, stop = threading.Event(), threading.Event(), threading.Event()
    results: dict = {}
    seen: list[int] = []

    def slow_writer():
        with transaction.atomic():
            recorded = store.append(uuid.uuid4(), "Clinic", [ClinicCreated(name="A", code="a")],
                                    0, META)
            a_inserted.set()
            release_a.wait(10)
        return recorded[0].position

    def fast_writer():
        recorded = store.append(uuid.uuid4(), "Clinic", [ClinicCreated(name="B", code="b")],
                                0, META)
        return recorded[0].position, time.monotonic()

    def poller():
        checkpoint = start
        while True:
            final = stop.is_set()
            for event in store.read_all(after=checkpoint, limit=100):
                seen.append(event.position)
                checkpoint = event.position
            if final:
                return checkpoint
            time.sleep(0.005)

    poll = in_thread(poller, results, "poller")
    a = in_thread(slow_writer, results, "a")
    assert a_inserted.wait(10)
    b = in_thread(fast_writer, results, "b")
    time.sleep(0.5)  # B commits now if nothing holds it back
    released_at = time.monotonic()
    release_a.set()
    a.join(30)
    b.join(30)
    stop.set()
    poll.join(30)

    a_position = results["a"]
    b_position, b_done_at = results["b"]
    assert a_position < b_position
    # B's commit waited for A's: commit order equals position order.
    assert b_done_at >= released_at
    assert seen == [a_position, b_position]


def test_many_concurrent_writers_keep_per_stream_order_in_the_log():
    start = store.last_position()
    streams = [uuid.uuid4() for _ in range(4)]
    results: dict = {}

    def writer(stream):
        def write():
            store.append(stream, "Clinic", [ClinicCreated(name="N", code="n")], 0, META)
            for version in range(1, 10):
                for _attempt in range(50):
                    try:
                        store.append(stream, "Clinic", [StaffRoleGranted(
                            user_id=version, username="u", role="nurse")], version, META)
                        break
                    except VersionConflict:
                        time.sleep(0.001)
            return True
        return write

    threads = [in_thread(writer(s), results, i) for i, s in enumerate(streams)]
    for thread in threads:
        thread.join(60)
    assert all(r is True for r in results.values()), results
    log = store.read_all(after=start, limit=1000)
    assert len(log) == 40
    for stream in streams:
        assert [e.version for e in log if e.aggregate_id == stream] == list(range(1, 11))


def test_two_writers_creating_one_subjects_data_key_share_it():
    """The first writer creates the key and commits late; the second, which found no key when
    it began, must take the stored key, not a key of its own that nobody stored."""
    from medflow.eventstore import crypto

    subject = uuid.uuid4()
    first_created, release_first = threading.Event(), threading.Event()
    results: dict = {}

    def first():
        with transaction.atomic():
            key = crypto.key_for_writing(subject)
            first_created.set()
            release_first.wait(10)
        return key

    def second():
        first_created.wait(10)
        with transaction.atomic():
            return crypto.key_for_writing(subject)

    threads = [in_thread(first, results, "first"), in_thread(second, results, "second")]
    time.sleep(0.3)  # let the second writer block on the first one's uncommitted key
    release_first.set()
    for thread in threads:
        thread.join(30)
    nonce, text = b"\0" * 12, b"sealed by the second writer"
    sealed = results["second"].encrypt(nonce, text, None)
    assert results["first"].decrypt(nonce, sealed, None) == text
    stored = crypto.keys_for_reading([subject])[subject]
    assert stored.decrypt(nonce, sealed, None) == text


def test_writers_racing_on_one_patient_through_the_cache_lose_no_update(clinic):
    """Each writer's cache entry goes stale as the other writes: a presumed head that lost the
    race must be read again, never written over (no lost update, no duplicate version)."""
    from medflow.context import system_context
    from medflow.patients.models import PatientReadModel
    from medflow.patients.services import register_patient, update_patient

    ctx = system_context("t")
    patient_id = register_patient(ctx, clinic_id=clinic.id, mrn="RACE-1", given_names="Rae",
                                  family_name="Race", birth_date="1990-01-01").aggregate_id
    update_patient(ctx, patient_id, {"phone": "555 0000"}, expected_version=1)  # head cached
    barrier = threading.Barrier(2)
    results: dict = {}

    def writer(name):
        def write():
            barrier.wait(10)
            done = []
            for number in range(12):
                phone = f"555 {name}{number:03d}"
                for _attempt in range(100):
                    try:
                        update_patient(ctx, patient_id, {"phone": phone}, expected_version=None)
                        done.append(phone)
                        break
                    except VersionConflict:
                        time.sleep(0.001)
            return done
        return write

    threads = [in_thread(writer(name), results, name) for name in (1, 2)]
    for thread in threads:
        thread.join(120)
    assert all(isinstance(r, list) and len(r) == 12 for r in results.values()), results
    events = store.load(patient_id)
    assert [e.version for e in events] == list(range(1, 27))
    phones = [e.event.payload()["phone"] for e in events[2:]]
    assert sorted(phones) == sorted(results[1] + results[2])
    row = PatientReadModel.objects.get(id=patient_id)
    assert (row.version, row.current_data["phone"]) == (26, phones[-1])
