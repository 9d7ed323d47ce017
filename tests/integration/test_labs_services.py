"""Lab services: roles, clinic scope, invariants, read models in step, as-of, rebuild."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from medflow.clinical.services import end_encounter, start_encounter
from medflow.context import Context
from medflow.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RuleViolated,
    VersionConflict,
)
from medflow.eventstore import store
from medflow.eventstore.commands import load_aggregate
from medflow.eventstore.handlers import InlineHandlers, inline
from medflow.eventstore.models import Snapshot, StoredEvent
from medflow.labs import queries
from medflow.labs.domain import LabOrder
from medflow.labs.models import LabOrderReadModel, LabResultReadModel
from medflow.labs.services import (
    cancel_lab_order,
    cancel_lab_result,
    correct_lab_result,
    place_lab_order,
    record_lab_result,
)
from medflow.patients.services import archive_patient, register_patient
from medflow.projections.catalog import get
from medflow.projections.rebuild import rebuild
from medflow.timeline.models import TimelineEntry
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db

GLUCOSE = {"loinc_code": "2345-7", "display": "Glucose", "unit": "mg/dL",
           "reference_low": 70.0, "reference_high": 99.0}
TESTS = [{"loinc_code": "2345-7", "display": "Glucose"},
         {"loinc_code": "4548-4", "display": "Hemoglobin A1c"}]


def staff_ctx(system, clinic, username: str, role: str) -> Context:
    user = make_staff(system, clinic, username, role)
    return Context(user_id=user.pk, username=username, role=role,
                   clinic_ids=frozenset({clinic.id}))


@pytest.fixture
def nurse_ctx(system, clinic):
    return staff_ctx(system, clinic, "nurse_ratched", "nurse")


@pytest.fixture
def order(doctor_ctx, registered):
    return place_lab_order(doctor_ctx, registered, tests=TESTS, priority="urgent",
                           reason="fatigue").aggregate_id


def taken(hours_ago: float = 2):
    return timezone.now() - timedelta(hours=hours_ago)


def result_of(ctx, order_id, value, **fields):
    result_id = uuid.uuid4()
    record_lab_result(ctx, order_id, result_id=result_id,
                      **{**GLUCOSE, "value": value, "effective_at": taken(), **fields})
    return result_id


def test_place_order_writes_event_and_read_model(doctor_ctx, doctor, clinic, registered, order):
    row = LabOrderReadModel.objects.get(id=order)
    assert (row.patient_id, row.clinic_id, row.ordering_provider_id) == (
        registered, clinic.id, doctor.pk)
    assert (row.status, row.priority, row.result_count, row.version) == ("placed", "urgent", 0, 1)
    assert [t["loinc_code"] for t in row.tests] == ["2345-7", "4548-4"]
    event = store.load(order)[0]
    assert event.event_type == "LabOrderPlaced" and event.aggregate_type == "LabOrder"
    assert event.metadata["command"] == "PlaceLabOrder"
    assert StoredEvent.objects.filter(aggregate_id=order).count() == 1


def test_an_order_names_only_an_encounter_of_its_own_patient(doctor_ctx, doctor, clinic,
                                                             registered, patient_fields):
    other = register_patient(doctor_ctx, clinic_id=clinic.id,
                             **{**patient_fields, "mrn": "MRN-2"}).aggregate_id
    theirs = start_encounter(doctor_ctx, patient_id=other, provider_id=doctor.pk).aggregate_id
    before = StoredEvent.objects.count()
    for encounter_id in (theirs, uuid.uuid4()):
        with pytest.raises(InvalidInput) as refused:
            place_lab_order(doctor_ctx, registered, tests=TESTS, encounter_id=encounter_id)
        assert refused.value.field == "encounter_id"
    assert StoredEvent.objects.count() == before
    assert not LabOrderReadModel.objects.exists()
    # The patient's own encounter is accepted, also once it has ended.
    own = start_encounter(doctor_ctx, patient_id=registered, provider_id=doctor.pk).aggregate_id
    end_encounter(doctor_ctx, own)
    placed = place_lab_order(doctor_ctx, registered, tests=TESTS, encounter_id=own).aggregate_id
    assert LabOrderReadModel.objects.get(id=placed).encounter_id == own


def test_only_doctors_order_and_only_doctors_and_nurses_record(system, clinic, registered,
                                                               nurse_ctx, order):
    with pytest.raises(PermissionDenied):
        place_lab_order(nurse_ctx, registered, tests=TESTS)
    clerk = staff_ctx(system, clinic, "clerk", "receptionist")
    before = StoredEvent.objects.count()
    with pytest.raises(PermissionDenied):
        record_lab_result(clerk, order, **GLUCOSE, value=90.0, effective_at=taken())
    assert StoredEvent.objects.count() == before
    result_of(nurse_ctx, order, 90.0)
    assert LabResultReadModel.objects.get(order_id=order).abnormal_flag == "N"


def test_ordering_provider_must_be_a_doctor_of_the_clinic(doctor_ctx, system, clinic,
                                                          other_clinic, registered, nurse_ctx):
    with pytest.raises(InvalidInput) as err:
        place_lab_order(doctor_ctx, registered, tests=TESTS, ordering_provider_id=nurse_ctx.user_id)
    assert err.value.field == "ordering_provider_id"
    elsewhere = make_staff(system, other_clinic, "dr_far", "doctor")
    with pytest.raises(InvalidInput):
        place_lab_order(doctor_ctx, registered, tests=TESTS, ordering_provider_id=elsewhere.pk)
    with pytest.raises(InvalidInput) as err:
        place_lab_order(system, registered, tests=TESTS)
    assert err.value.field == "ordering_provider_id"
    colleague = make_staff(system, clinic, "dr_wilson", "doctor")
    result = place_lab_order(system, registered, tests=TESTS, ordering_provider_id=colleague.pk)
    assert LabOrderReadModel.objects.get(id=result.aggregate_id).ordering_provider_id == (
        colleague.pk)


def test_archived_patient_takes_no_new_orders(doctor_ctx, registered):
    archive_patient(doctor_ctx, registered, reason="moved away")
    with pytest.raises(RuleViolated) as err:
        place_lab_order(doctor_ctx, registered, tests=TESTS)
    assert err.value.code == "patient_archived"


def test_foreign_clinic_sees_and_changes_nothing(doctor_ctx, system, other_clinic, registered,
                                                 order):
    result_id = result_of(doctor_ctx, order, 90.0)
    stranger = staff_ctx(system, other_clinic, "dr_stranger", "doctor")
    before = StoredEvent.objects.count()
    attempts = [
        lambda: place_lab_order(stranger, registered, tests=TESTS),
        lambda: record_lab_result(stranger, order, **GLUCOSE, value=1.0, effective_at=taken()),
        lambda: correct_lab_result(stranger, order, result_id, {"value": 1.0}, reason="x",
                                   expected_version=99),
        lambda: cancel_lab_result(stranger, order, result_id, reason="x", expected_version=2),
        lambda: cancel_lab_order(stranger, order, reason="x", expected_version=2),
        lambda: queries.patient_lab_orders(stranger, registered),
        lambda: queries.patient_lab_results(stranger, registered),
        lambda: queries.get_lab_order(stranger, order),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            attempt()
    assert StoredEvent.objects.count() == before
    with pytest.raises(NotFound):
        record_lab_result(doctor_ctx, uuid.uuid4(), **GLUCOSE, value=1.0, effective_at=taken())


def test_record_correct_cancel_keep_the_read_models_in_step(doctor_ctx, nurse_ctx, order):
    result_id = result_of(nurse_ctx, order, 250.0, critical_high=400.0)
    row = LabResultReadModel.objects.get(id=result_id)
    assert (row.value, row.abnormal_flag, row.status, row.version, row.order_id) == (
        250.0, "H", "final", 2, order)
    assert LabOrderReadModel.objects.get(id=order).status == "resulted"
    correct_lab_result(doctor_ctx, order, result_id, {"value": 95.0}, reason="wrong sample",
                       expected_version=2)
    row = LabResultReadModel.objects.get(id=result_id)
    assert (row.value, row.abnormal_flag, row.status, row.version) == (95.0, "N", "corrected", 3)
    assert row.recorded_at < row.updated_at
    assert store.load(order)[-1].metadata["reason"] == "wrong sample"
    cancel_lab_result(doctor_ctx, order, result_id, reason="wrong patient", expected_version=3)
    row = LabResultReadModel.objects.get(id=result_id)
    assert (row.status, row.value, row.version) == ("cancelled", 95.0, 4)
    order_row = LabOrderReadModel.objects.get(id=order)
    assert (order_row.status, order_row.result_count, order_row.version) == ("placed", 0, 4)


def test_the_order_counts_its_standing_results_as_a_replay_does(doctor_ctx, nurse_ctx, order):
    first, second, third = (result_of(nurse_ctx, order, v) for v in (90.0, 91.0, 92.0))
    correct_lab_result(doctor_ctx, order, second, {"value": 93.0}, reason="typo",
                       expected_version=4)
    cancel_lab_result(doctor_ctx, order, first, reason="haemolysed", expected_version=5)
    row = LabOrderReadModel.objects.get(id=order)
    assert (row.status, row.result_count, row.version) == ("resulted", 2, 6)
    # A replay of the order's events (the batch path of a rebuild) counts the same.
    rebuild(get("labs"), batch=3)
    assert LabOrderReadModel.objects.get(id=order).result_count == 2
    for result_id, version in ((second, 7), (third, 8)):
        cancel_lab_result(doctor_ctx, order, result_id, reason="wrong patient",
                          expected_version=version - 1)
    row = LabOrderReadModel.objects.get(id=order)
    assert (row.status, row.result_count) == ("placed", 0)


def test_stale_version_is_refused_and_writes_nothing(doctor_ctx, order):
    result_id = result_of(doctor_ctx, order, 90.0)
    result_of(doctor_ctx, order, 91.0)
    before = StoredEvent.objects.count()
    with pytest.raises(VersionConflict):
        correct_lab_result(doctor_ctx, order, result_id, {"value": 80.0}, reason="typo",
                           expected_version=2)
    assert StoredEvent.objects.count() == before
    assert LabResultReadModel.objects.get(id=result_id).value == 90.0


def test_invariants_at_service_level(doctor_ctx, order):
    result_id = result_of(doctor_ctx, order, 90.0)
    before = StoredEvent.objects.count()
    with pytest.raises(RuleViolated) as err:
        cancel_lab_order(doctor_ctx, order, reason="not needed", expected_version=2)
    assert err.value.code == "order_has_results"
    with pytest.raises(RuleViolated) as err:
        correct_lab_result(doctor_ctx, order, result_id, {"value": 90.0}, reason="same",
                           expected_version=2)
    assert err.value.code == "no_change"
    with pytest.raises(NotFound):
        cancel_lab_result(doctor_ctx, order, uuid.uuid4(), reason="x", expected_version=2)
    with pytest.raises(InvalidInput) as err:
        record_lab_result(doctor_ctx, order, **GLUCOSE, value=90.0, effective_at=taken(-1))
    assert err.value.field == "effective_at"
    assert StoredEvent.objects.count() == before
    cancel_lab_result(doctor_ctx, order, result_id, reason="clotted", expected_version=2)
    with pytest.raises(RuleViolated) as err:
        cancel_lab_result(doctor_ctx, order, result_id, reason="again", expected_version=3)
    assert err.value.code == "result_cancelled"
    cancel_lab_order(doctor_ctx, order, reason="not needed", expected_version=3)
    assert LabOrderReadModel.objects.get(id=order).status == "cancelled"
    with pytest.raises(RuleViolated) as err:
        result_of(doctor_ctx, order, 90.0)
    assert err.value.code == "order_cancelled"


def test_a_result_id_is_unique_across_orders(doctor_ctx, registered, order):
    result_id = result_of(doctor_ctx, order, 90.0)
    other = place_lab_order(doctor_ctx, registered, tests=TESTS).aggregate_id
    with pytest.raises(Conflict) as err:
        record_lab_result(doctor_ctx, other, result_id=result_id, **GLUCOSE, value=1.0,
                          effective_at=taken())
    assert err.value.code == "result_exists"


def test_results_series_by_loinc_oldest_specimen_first(doctor_ctx, registered, order):
    late = result_of(doctor_ctx, order, 120.0, effective_at=taken(1))
    early = result_of(doctor_ctx, order, 80.0, effective_at=taken(30))
    a1c = result_of(doctor_ctx, order, 6.1, loinc_code="4548-4", display="Hemoglobin A1c",
                    unit="%", reference_low=None, reference_high=5.6, effective_at=taken(5))
    assert [r["id"] for r in queries.patient_lab_results(doctor_ctx, registered)] == [
        early, a1c, late]
    glucose = queries.patient_lab_results(doctor_ctx, registered, loinc="2345-7")
    assert [(r["value"], r["abnormal_flag"]) for r in glucose] == [(80.0, "N"), (120.0, "H")]
    with pytest.raises(InvalidInput) as err:
        queries.patient_lab_results(doctor_ctx, registered, loinc="glucose")
    assert err.value.field == "loinc"
    cancel_lab_result(doctor_ctx, order, late, reason="lipaemic", expected_version=4)
    assert [r["id"] for r in queries.patient_lab_results(doctor_ctx, registered,
                                                         loinc="2345-7")] == [early]
    everything = queries.patient_lab_results(doctor_ctx, registered, include_cancelled=True)
    assert {r["id"]: r["status"] for r in everything}[late] == "cancelled"


def test_as_of_shows_results_as_they_stood(doctor_ctx, registered, order):
    result_id = result_of(doctor_ctx, order, 250.0)
    first = StoredEvent.objects.get(aggregate_id=order, version=2).timestamp
    correct_lab_result(doctor_ctx, order, result_id, {"value": 95.0}, reason="wrong sample",
                       expected_version=2)
    placed = StoredEvent.objects.get(aggregate_id=order, version=1).timestamp
    then = queries.patient_lab_results(doctor_ctx, registered, as_of=first)
    assert [(r["value"], r["status"], r["version"]) for r in then] == [(250.0, "final", 2)]
    now = queries.patient_lab_results(doctor_ctx, registered)
    assert [(r["value"], r["status"], r["version"]) for r in now] == [(95.0, "corrected", 3)]
    assert queries.patient_lab_results(doctor_ctx, registered, as_of=placed) == []
    orders_then = queries.patient_lab_orders(doctor_ctx, registered, as_of=placed)
    assert [(o["id"], o["status"], o["version"]) for o in orders_then] == [(order, "placed", 1)]
    assert queries.patient_lab_orders(doctor_ctx, registered,
                                      as_of=placed - timedelta(seconds=1)) == []
    order_then, results_then = queries.get_lab_order(doctor_ctx, order, as_of=first)
    assert order_then["version"] == 2 and results_then[0]["value"] == 250.0
    with pytest.raises(NotFound) as err:
        queries.get_lab_order(doctor_ctx, order, as_of=placed - timedelta(seconds=1))
    assert err.value.field == "as_of"


def test_lab_events_land_on_the_timeline_at_specimen_time(doctor_ctx, registered, order):
    specimen = taken(26)
    result_of(doctor_ctx, order, 250.0, effective_at=specimen)
    entry = TimelineEntry.objects.get(event_type="LabResultRecorded")
    assert (entry.patient_id, entry.kind, entry.occurred_at) == (registered, "lab", specimen)
    assert entry.summary == "Glucose 250 mg/dL (H)"
    assert TimelineEntry.objects.get(event_type="LabOrderPlaced").summary == (
        "Lab order (urgent): Glucose, Hemoglobin A1c")


def test_snapshots_of_orders_are_used_and_agree_with_a_replay(settings, doctor_ctx, order):
    settings.MEDFLOW_SNAPSHOT_EVERY = 3
    for value in (90.0, 91.0, 92.0, 93.0, 94.0):
        result_of(doctor_ctx, order, value)
    assert sorted(Snapshot.objects.filter(aggregate_id=order).values_list("version", flat=True)) == [
        3, 6]
    from_snapshot = load_aggregate(LabOrder, order)
    replayed = LabOrder.replay(order, [e.event for e in store.load(order)])
    assert from_snapshot.state() == replayed.state() and from_snapshot.version == 6


def _labs_only() -> InlineHandlers:
    mine = InlineHandlers()
    for event_type, handlers in inline._handlers.items():
        for handler in handlers:
            if handler.__module__ == "medflow.labs.projections":
                mine._handlers[event_type].append(handler)
    return mine


def test_read_models_equal_a_fresh_replay_of_the_log(doctor_ctx, nurse_ctx, registered,
                                                     clinic, system, patient_fields, order):
    kept = result_of(nurse_ctx, order, 250.0)
    fixed = result_of(nurse_ctx, order, 40.0, critical_low=50.0)
    dropped = result_of(nurse_ctx, order, 30.0)
    correct_lab_result(doctor_ctx, order, fixed, {"value": 75.0}, reason="re-run",
                       expected_version=4)
    cancel_lab_result(doctor_ctx, order, dropped, reason="wrong tube", expected_version=5)
    other_patient = register_patient(doctor_ctx, clinic_id=clinic.id,
                                     **{**patient_fields, "mrn": "MRN-2"}).aggregate_id
    empty = place_lab_order(doctor_ctx, other_patient, tests=TESTS).aggregate_id
    cancel_lab_order(doctor_ctx, empty, reason="duplicate", expected_version=1)
    assert kept

    def dump():
        return (list(LabOrderReadModel.objects.order_by("id").values()),
                list(LabResultReadModel.objects.order_by("id").values()))

    before = dump()
    assert len(before[0]) == 2 and len(before[1]) == 3
    LabResultReadModel.objects.all().delete()
    LabOrderReadModel.objects.all().delete()
    _labs_only().dispatch(list(store.iter_all()))
    assert dump() == before
