"""Patient application services: invariants, read model in the same transaction, idempotency."""

import uuid

import pytest

from medflow.context import Context
from medflow.errors import Conflict, InvalidInput, NotFound, RuleViolated, VersionConflict
from medflow.eventstore import store
from medflow.eventstore.commands import load_aggregate
from medflow.eventstore.models import Snapshot, StoredEvent
from medflow.patients import queries
from medflow.patients.domain import Patient
from medflow.patients.models import PatientReadModel
from medflow.patients.services import archive_patient, register_patient, update_patient

pytestmark = pytest.mark.django_db


def test_register_writes_event_and_read_model_together(doctor_ctx, registered):
    row = PatientReadModel.objects.get(id=registered)
    assert (row.version, row.mrn, row.family_name) == (1, "MRN-1", "Lovelace")
    assert row.current_data["given_names"] == "Ada"
    event = store.load(registered)[0]
    assert event.event_type == "PatientRegistered"
    assert event.metadata["user_id"] == doctor_ctx.user_id
    assert event.metadata["command"] == "RegisterPatient"
    assert event.metadata["correlation_id"] == str(doctor_ctx.correlation_id)


def test_mrn_is_unique_per_clinic_only(doctor_ctx, clinic, other_clinic, system, patient_fields,
                                       registered):
    before = StoredEvent.objects.count()
    with pytest.raises(Conflict) as err:
        register_patient(doctor_ctx, clinic_id=clinic.id, **patient_fields)
    assert (err.value.code, err.value.field) == ("mrn_taken", "mrn")
    assert StoredEvent.objects.count() == before
    register_patient(system, clinic_id=other_clinic.id, **patient_fields)


def test_changing_mrn_to_a_taken_one_is_refused(doctor_ctx, clinic, patient_fields, registered):
    other = register_patient(doctor_ctx, clinic_id=clinic.id, **{**patient_fields, "mrn": "MRN-2"})
    with pytest.raises(Conflict):
        update_patient(doctor_ctx, other.aggregate_id, {"mrn": "MRN-1"}, expected_version=1)
    assert PatientReadModel.objects.get(id=other.aggregate_id).mrn == "MRN-2"


def test_update_checks_version_and_keeps_read_model_in_step(doctor_ctx, registered):
    result = update_patient(doctor_ctx, registered, {"phone": "555 0100"}, expected_version=1)
    assert result.version == 2
    with pytest.raises(VersionConflict):
        update_patient(doctor_ctx, registered, {"phone": "555 0101"}, expected_version=1)
    row = PatientReadModel.objects.get(id=registered)
    assert (row.version, row.current_data["phone"]) == (2, "555 0100")


def test_rejected_command_writes_nothing(doctor_ctx, registered):
    before = StoredEvent.objects.count()
    with pytest.raises(InvalidInput):
        update_patient(doctor_ctx, registered, {"birth_date": "2999-01-01"}, expected_version=1)
    assert StoredEvent.objects.count() == before
    assert PatientReadModel.objects.get(id=registered).version == 1


def test_archive_then_no_more_changes(doctor_ctx, registered):
    archive_patient(doctor_ctx, registered, reason="moved away")
    assert PatientReadModel.objects.get(id=registered).archived
    with pytest.raises(RuleViolated):
        update_patient(doctor_ctx, registered, {"phone": "1234"}, expected_version=2)
    assert store.load(registered)[-1].metadata["reason"] == "moved away"


def test_retried_command_id_is_a_no_op_returning_the_first_result(doctor_ctx, clinic,
                                                                  patient_fields):
    command = uuid.uuid4()
    first = register_patient(doctor_ctx, clinic_id=clinic.id, command_id=command, **patient_fields)
    again = register_patient(doctor_ctx, clinic_id=clinic.id, command_id=command, **patient_fields)
    assert (again.aggregate_id, again.version, again.replayed) == (first.aggregate_id, 1, True)
    assert StoredEvent.objects.filter(event_type="PatientRegistered").count() == 1
    archive = uuid.uuid4()
    archive_patient(doctor_ctx, first.aggregate_id, command_id=archive)
    assert archive_patient(doctor_ctx, first.aggregate_id, command_id=archive).version == 2


def test_foreign_clinic_sees_nothing(registered, system, other_clinic):
    stranger = Context(user_id=999, role="doctor", clinic_ids=frozenset({other_clinic.id}))
    with pytest.raises(NotFound):
        queries.get_patient(stranger, registered)
    with pytest.raises(NotFound):
        update_patient(stranger, registered, {"phone": "1"}, expected_version=1)
    with pytest.raises(NotFound):
        register_patient(stranger, clinic_id=PatientReadModel.objects.get().clinic_id,
                         mrn="X", given_names="A", family_name="B", birth_date="2000-01-01")
    assert queries.search_patients(stranger, "Ada") == (0, [])


def test_search_by_name_parts_and_exact_mrn(doctor_ctx, clinic, patient_fields, registered):
    register_patient(doctor_ctx, clinic_id=clinic.id, **{**patient_fields, "mrn": "MRN-2",
                                                         "given_names": "Charles",
                                                         "family_name": "Babbage"})
    assert [r.family_name for r in queries.search_patients(doctor_ctx, "ada love")[1]] == [
        "Lovelace"]
    assert [r.mrn for r in queries.search_patients(doctor_ctx, "MRN-2")[1]] == ["MRN-2"]
    count, page = queries.search_patients(doctor_ctx, "", limit=1, offset=1)
    assert count == 2 and [r.family_name for r in page] == ["Lovelace"]


def test_state_at_version_and_time(doctor_ctx, registered):
    at_one = StoredEvent.objects.get(aggregate_id=registered, version=1).timestamp
    update_patient(doctor_ctx, registered, {"family_name": "King"}, expected_version=1)
    assert queries.get_patient_at(doctor_ctx, registered, version=1).data["family_name"] == (
        "Lovelace")
    assert queries.get_patient_at(doctor_ctx, registered, as_of=at_one).version == 1
    with pytest.raises(InvalidInput):
        queries.get_patient_at(doctor_ctx, registered, version=5)


def test_snapshot_interval_per_aggregate_type(settings, doctor_ctx, registered):
    settings.MEDFLOW_SNAPSHOT_EVERY = 100
    settings.MEDFLOW_SNAPSHOT_EVERY_BY_TYPE = {"Patient": 2}
    update_patient(doctor_ctx, registered, {"phone": "555 0100"}, expected_version=1)
    assert list(Snapshot.objects.values_list("version", flat=True)) == [2]


def test_snapshots_every_n_events_and_load_uses_them(settings, doctor_ctx, registered):
    settings.MEDFLOW_SNAPSHOT_EVERY = 3
    for version in range(1, 7):
        update_patient(doctor_ctx, registered, {"phone": f"555 01{version:02d}"},
                       expected_version=version)
    assert sorted(Snapshot.objects.values_list("version", flat=True)) == [3, 6]
    # Doctor the snapshot to prove the load starts from it, not from event 1.
    Snapshot.objects.filter(version=6).update(
        state={**PatientReadModel.objects.get(id=registered).current_data, "family_name": "Snap"}
    )
    patient = load_aggregate(Patient, registered)
    assert (patient.demographics["family_name"], patient.demographics["phone"]) == (
        "Snap", "555 0106")
    # A snapshot of another state version is ignored, never misread.
    Snapshot.objects.update(schema_version=99)
    patient = load_aggregate(Patient, registered)
    assert (patient.version, patient.demographics["family_name"]) == (7, "Lovelace")


def test_version_bounded_loads_take_the_newest_snapshot_at_or_below_the_bound(
    settings, doctor_ctx, registered,
):
    settings.MEDFLOW_SNAPSHOT_EVERY = 3
    for version in range(1, 7):
        update_patient(doctor_ctx, registered, {"phone": f"555 03{version:02d}"},
                       expected_version=version)
    # Doctor each snapshot, so that a load shows which one it started from.
    for snapshot in Snapshot.objects.filter(aggregate_id=registered):
        snapshot.state = {**snapshot.state, "family_name": f"Snap{snapshot.version}"}
        snapshot.save(update_fields=["state"])

    def loaded(to_version=None):
        patient = load_aggregate(Patient, registered, to_version=to_version)
        return patient.version, patient.demographics["family_name"], patient.demographics["phone"]

    assert loaded(2) == (2, "Lovelace", "555 0301")  # below every snapshot: from event 1
    assert loaded(3) == (3, "Snap3", "555 0302")  # the snapshot itself, no event after it
    assert loaded(5) == (5, "Snap3", "555 0304")  # snapshot 3, then events 4 and 5
    assert loaded(6) == (6, "Snap6", "555 0305")
    assert loaded() == (7, "Snap6", "555 0306")  # the head: snapshot 6, then event 7


def test_as_of_loads_start_from_a_snapshot_recorded_by_then(settings, doctor_ctx, registered):
    from medflow.eventstore.models import StoredEvent

    settings.MEDFLOW_SNAPSHOT_EVERY = 2
    for version in range(1, 4):
        update_patient(doctor_ctx, registered, {"phone": f"555 02{version:02d}"},
                       expected_version=version)
    at_two = StoredEvent.objects.get(aggregate_id=registered, version=2).timestamp
    at_three = StoredEvent.objects.get(aggregate_id=registered, version=3).timestamp
    # Doctor the snapshot at version 2 to see whether an as-of load starts from it.
    Snapshot.objects.filter(aggregate_id=registered, version=2).update(
        state={**PatientReadModel.objects.get(id=registered).current_data, "family_name": "Snap"})
    assert load_aggregate(Patient, registered, as_of=at_three).demographics["family_name"] == "Snap"
    assert load_aggregate(Patient, registered, as_of=at_two).version == 2
    # Before the snapshot's version was recorded, the load replays from the first event.
    before = StoredEvent.objects.get(aggregate_id=registered, version=1).timestamp
    patient = load_aggregate(Patient, registered, as_of=before)
    assert (patient.version, patient.demographics["family_name"]) == (1, "Lovelace")
