"""Multi-stream append and the unit of work (medflow.eventstore.batch), on the configured backend."""

import uuid
from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from medflow.access.domain import Clinic, ClinicCreated, StaffRoleGranted
from medflow.access.models import ClinicReadModel, Membership
from medflow.context import system_context
from medflow.errors import InvalidInput, NotFound, RuleViolated, VersionConflict
from medflow.eventstore import crypto, store
from medflow.eventstore.batch import UnitOfWork
from medflow.eventstore.commands import load_aggregate
from medflow.eventstore.models import Snapshot, StoredEvent, Stream
from medflow.patients.domain import PatientRegistered, PatientUpdated

pytestmark = pytest.mark.django_db


def item(stream, event, n=0, aggregate_type="Clinic"):
    return store.StreamEvent(stream, aggregate_type, event, {"n": n})


def granted(i):
    return StaffRoleGranted(user_id=i, username=f"u{i}", role="nurse")


def test_append_batch_interleaves_streams_in_list_order():
    old, new_a, new_b, clinic = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    store.append(old, "Clinic", [ClinicCreated(name="Old", code="old")], 0, {})
    recorded = store.append_batch(
        [item(new_a, ClinicCreated(name="A", code="a"), 1), item(old, granted(1), 2),
         item(new_b, ClinicCreated(name="B", code="b"), 3), item(new_a, granted(2), 4),
         item(old, granted(3), 5)],
        {old: 1, new_a: 0, new_b: 0}, clinic_ids={new_a: clinic},
    )
    assert [(r.aggregate_id, r.version) for r in recorded] == [
        (new_a, 1), (old, 2), (new_b, 1), (new_a, 2), (old, 3)]
    positions = [r.position for r in recorded]
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert [r.metadata["n"] for r in recorded] == [1, 2, 3, 4, 5]
    assert all(r.metadata["schema_version"] == 1 for r in recorded)
    # What was returned is what the log holds.
    assert [(e.position, e.event) for e in store.load(new_a)] == [
        (recorded[0].position, recorded[0].event), (recorded[3].position, recorded[3].event)]
    assert {s.aggregate_id: (s.version, s.clinic_id) for s in Stream.objects.filter(
        aggregate_id__in=[old, new_a, new_b])} == {old: (3, None), new_a: (2, clinic),
                                                   new_b: (1, None)}


@pytest.mark.parametrize("stale", ["existing", "new"])
def test_append_batch_checks_every_expected_version_and_writes_nothing_on_conflict(stale):
    old, new = uuid.uuid4(), uuid.uuid4()
    store.append(old, "Clinic", [ClinicCreated(name="Old", code="old")], 0, {})
    if stale == "new":
        store.append(new, "Clinic", [ClinicCreated(name="New", code="new")], 0, {})
    before = StoredEvent.objects.count()
    expected = {old: 0 if stale == "existing" else 1, new: 0}
    with pytest.raises(VersionConflict) as err, transaction.atomic():
        store.append_batch([item(new, ClinicCreated(name="N", code="n")), item(old, granted(1))],
                           expected)
    assert (err.value.expected, err.value.actual) == (0, 1)
    assert StoredEvent.objects.count() == before
    assert Stream.objects.get(aggregate_id=old).version == 1


def test_append_batch_seals_personal_fields_with_the_subjects_keys():
    patients = [uuid.uuid4(), uuid.uuid4()]
    clinic = uuid.uuid4()
    store.append_batch(
        [item(p, PatientRegistered(clinic_id=clinic, mrn=f"M{i}", given_names=f"Ann{i}",
                                   family_name="Lee", birth_date=date(1990, 1, 1), sex="female"),
              aggregate_type="Patient") for i, p in enumerate(patients)],
        dict.fromkeys(patients, 0), clinic_ids=dict.fromkeys(patients, clinic),
    )
    for i, patient in enumerate(patients):
        raw = StoredEvent.objects.get(aggregate_id=patient).event_data
        assert raw["_sealed"]["s"] == str(patient) and "given_names" not in raw
        assert store.load(patient)[0].event.given_names == f"Ann{i}"
        assert Stream.objects.get(aggregate_id=patient).subject_id == patient


def test_append_batch_seals_before_the_order_lock_when_every_key_exists(monkeypatch):
    """Events are stored under the ids they were given; they are sealed before the lock (held
    to the commit) when their keys exist, under it when one must be created."""
    calls: list[str] = []
    seal, dialect = store.sealing.seal, type(store.dialect())
    lock = dialect.lock_global_order
    monkeypatch.setattr(store.sealing, "seal", lambda *a: calls.append("seal") or seal(*a))
    monkeypatch.setattr(dialect, "lock_global_order",
                        lambda self, cursor: calls.append("lock") or lock(self, cursor))
    patient, clinic = uuid.uuid4(), uuid.uuid4()
    first = item(patient, PatientRegistered(
        clinic_id=clinic, mrn="M1", given_names="Ann", family_name="Lee",
        birth_date=date(1990, 1, 1), sex="female"), aggregate_type="Patient")
    [registered] = store.append_batch([first], {patient: 0}, clinic_ids={patient: clinic})
    assert calls == ["lock", "seal"]  # no key yet: the lock first, then the key and the seal
    calls.clear()
    second = item(patient, PatientUpdated(given_names="Anna"), n=1, aggregate_type="Patient")
    [updated] = store.append_batch([second], {patient: 1})
    assert calls == ["seal", "lock"]
    assert (registered.id, updated.id) == (first.event_id, second.event_id)
    assert list(StoredEvent.objects.filter(aggregate_id=patient).order_by("version")
                .values_list("id", flat=True)) == [first.event_id, second.event_id]
    assert [e.event for e in store.load(patient)] == [first.event, second.event]
    raw = StoredEvent.objects.get(id=second.event_id).event_data
    assert raw["_sealed"]["s"] == str(patient) and "Anna" not in str(raw)


def test_append_batch_refuses_a_subject_forgotten_after_its_events_were_sealed(monkeypatch):
    patient, clinic = uuid.uuid4(), uuid.uuid4()
    store.append_batch([item(patient, PatientRegistered(
        clinic_id=clinic, mrn="M1", given_names="Ann", family_name="Lee",
        birth_date=date(1990, 1, 1), sex="female"), aggregate_type="Patient")],
        {patient: 0}, clinic_ids={patient: clinic})
    prepare = store._prepare_many

    def forgotten_meanwhile(*args):
        prepared = prepare(*args)
        crypto.destroy(patient)  # as a forget committing before this append takes the lock
        return prepared

    monkeypatch.setattr(store, "_prepare_many", forgotten_meanwhile)
    with pytest.raises(RuleViolated) as refused, transaction.atomic():
        store.append_batch([item(patient, PatientUpdated(given_names="Anna"),
                                 aggregate_type="Patient")], {patient: 1})
    assert refused.value.code == "subject_forgotten"
    assert StoredEvent.objects.filter(aggregate_id=patient).count() == 1


def test_append_batch_refuses_a_forgotten_subject_beside_a_new_one(monkeypatch):
    """A batch that must create a key seals under the lock, with the other subjects' keys read
    before it: one of them forgotten meanwhile is refused too."""
    patient, clinic, newcomer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    store.append_batch([item(patient, PatientRegistered(
        clinic_id=clinic, mrn="M1", given_names="Ann", family_name="Lee",
        birth_date=date(1990, 1, 1), sex="female"), aggregate_type="Patient")],
        {patient: 0}, clinic_ids={patient: clinic})
    read_keys = store._keys_for_sealing

    def forgotten_meanwhile(events):
        keys = read_keys(events)
        crypto.destroy(patient)
        return keys

    monkeypatch.setattr(store, "_keys_for_sealing", forgotten_meanwhile)
    with pytest.raises(RuleViolated) as refused, transaction.atomic():
        store.append_batch([
            item(newcomer, PatientRegistered(
                clinic_id=clinic, mrn="M2", given_names="Bo", family_name="Lee",
                birth_date=date(1991, 1, 1), sex="male"), aggregate_type="Patient"),
            item(patient, PatientUpdated(given_names="Anna"), aggregate_type="Patient"),
        ], {newcomer: 0, patient: 1}, clinic_ids={newcomer: clinic})
    assert refused.value.code == "subject_forgotten"
    assert not StoredEvent.objects.filter(aggregate_id=newcomer).exists()


def test_append_batch_needs_an_expected_version_for_every_stream():
    with pytest.raises(ValueError, match="no expected version"):
        store.append_batch([item(uuid.uuid4(), ClinicCreated(name="N", code="n"))], {})


def test_unit_of_work_keeps_aggregates_in_memory_until_commit(settings):
    settings.MEDFLOW_SNAPSHOT_EVERY = 3
    for user_id in (1, 2, 3):
        get_user_model().objects.create(id=user_id, username=f"u{user_id}")
    ctx = system_context("test")
    stored, fresh = uuid.uuid4(), uuid.uuid4()
    first = UnitOfWork()
    first.execute(ctx, Clinic, stored, lambda c: c.create("S", "s"), command="CreateClinic",
                  create=True)
    first.execute(ctx, Clinic, stored, lambda c: c.grant(1, "u1", "nurse"),
                  command="GrantStaffRole")
    first.commit()

    uow = UnitOfWork()
    uow.preload(Clinic, [stored, fresh])
    uow.execute(ctx, Clinic, fresh, lambda c: c.create("F", "f"), command="CreateClinic",
                create=True)
    for user_id in (2, 3):
        # The second grant sees the first one, before anything is stored.
        uow.execute(ctx, Clinic, stored, lambda c, u=user_id: c.grant(u, f"u{u}", "doctor"),
                    command="GrantStaffRole")
    uow.execute(ctx, Clinic, fresh, lambda c: c.grant(1, "u1", "doctor"), command="GrantStaffRole")
    assert uow.get(Clinic, stored).roles == {1: "nurse", 2: "doctor", 3: "doctor"}
    assert store.current_version(stored) == 2 and store.current_version(fresh) == 0
    recorded = uow.commit()
    assert [(r.aggregate_id, r.version) for r in recorded] == [
        (fresh, 1), (stored, 3), (stored, 4), (fresh, 2)]
    assert recorded[1].metadata["command"] == "GrantStaffRole"
    assert load_aggregate(Clinic, stored).roles == {1: "nurse", 2: "doctor", 3: "doctor"}
    # The inline projections ran over the batch.
    assert ClinicReadModel.objects.filter(id=fresh, name="F").exists()
    assert set(Membership.objects.filter(clinic_id__in=[stored, fresh]).values_list(
        "clinic_id", "user_id", "role")) == {
        (stored, 1, "nurse"), (stored, 2, "doctor"), (stored, 3, "doctor"), (fresh, 1, "doctor")}
    # A snapshot is due for the stream that went past version 3, at the version it reached.
    assert list(Snapshot.objects.filter(aggregate_id=stored).values_list("version", flat=True)) == [4]
    assert not Snapshot.objects.filter(aggregate_id=fresh).exists()
    # The unit goes on from the stored state; a new unit starts from the snapshot.
    uow.execute(ctx, Clinic, stored, lambda c: c.revoke(1), command="RevokeStaffRole")
    assert [r.version for r in uow.commit()] == [5]
    again = UnitOfWork().get(Clinic, stored)
    assert (again.version, again.roles) == (5, {2: "doctor", 3: "doctor"})


def test_unit_of_work_refusals_leave_nothing_staged():
    ctx = system_context("test")
    uow = UnitOfWork()
    clinic = uuid.uuid4()
    with pytest.raises(NotFound):
        uow.execute(ctx, Clinic, clinic, lambda c: c.grant(1, "u1", "doctor"),
                    command="GrantStaffRole")
    uow.execute(ctx, Clinic, clinic, lambda c: c.create("C", "c"), command="CreateClinic",
                create=True)
    with pytest.raises(VersionConflict):
        uow.execute(ctx, Clinic, clinic, lambda c: c.create("C", "c"), command="CreateClinic",
                    create=True)
    with pytest.raises(InvalidInput):
        uow.execute(ctx, Clinic, clinic, lambda c: c.grant(1, "u1", "janitor"),
                    command="GrantStaffRole")
    assert not uow.spoiled and len(uow.staged) == 1

    def record_then_refuse(c):
        c.grant(2, "u2", "doctor")
        raise InvalidInput("refused after recording", field="x")

    with pytest.raises(InvalidInput):
        uow.execute(ctx, Clinic, clinic, record_then_refuse, command="GrantStaffRole")
    assert uow.spoiled and len(uow.staged) == 1
    with pytest.raises(RuntimeError):
        uow.commit()
