"""Clinical read models: one row per event, current state, as_of, and equality with a replay."""

from datetime import timedelta

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.utils import timezone

from medflow.clinical import queries, services
from medflow.clinical.domain import EVENTS
from medflow.clinical.models import (
    AllergyRecord,
    ClinicalEventRecord,
    DiagnosisRecord,
    EncounterRecord,
    LatestVitalSign,
    MedicationRecord,
    NoteRecord,
)
from medflow.clinical.projections import READ_MODELS, project
from medflow.context import Context
from medflow.errors import NotFound, PermissionDenied
from medflow.eventstore import store
from medflow.eventstore.models import StoredEvent
from medflow.patients.services import update_patient
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db

DX = {"code_system": "SNOMED CT", "code": "44054006", "display": "Diabetes mellitus type 2"}
ALLERGY = {"code_system": "SNOMED CT", "code": "762952008", "display": "Peanut", "category": "food",
           "criticality": "high", "reactions": [{"manifestation": "Angioedema", "severity": "severe"}],
           "note": "Lips swelled at a party"}
RX = {"drug_code": "860975", "drug_name": "Metformin 500 MG", "dose": "500 mg", "route": "oral",
      "frequency": "twice daily"}


@pytest.fixture
def second_doctor_ctx(system, clinic):
    user = make_staff(system, clinic, "dr_cuddy", "doctor")
    return Context(user_id=user.pk, username="dr_cuddy", role="doctor",
                   clinic_ids=frozenset({clinic.id}))


@pytest.fixture
def history(doctor_ctx, second_doctor_ctx, registered):
    """A small clinical record: encounter with vitals, diagnosis, allergies, prescriptions, notes."""
    ctx, patient = doctor_ctx, registered
    encounter = services.start_encounter(ctx, patient_id=patient, provider_id=None,
                                         reason="review").aggregate_id
    services.record_vital_signs(ctx, patient_id=patient, encounter_id=encounter, systolic=150,
                                diastolic=95, heart_rate=88)
    diagnosis = services.add_diagnosis(ctx, patient_id=patient, encounter_id=encounter,
                                       **DX).aggregate_id
    allergy = services.record_allergy(ctx, patient_id=patient, encounter_id=encounter,
                                      **ALLERGY).aggregate_id
    latex = services.record_allergy(ctx, patient_id=patient, code_system="SNOMED CT",
                                    code="111088007", display="Latex",
                                    category="environment").aggregate_id
    metformin = services.prescribe_medication(ctx, patient_id=patient, encounter_id=encounter,
                                              **RX).aggregate_id
    note = services.draft_note(ctx, patient_id=patient, encounter_id=encounter,
                               subjective="Thirsty", assessment="T2DM").aggregate_id
    services.sign_note(ctx, note)
    services.end_encounter(ctx, encounter, disposition="home")
    # Everything up to here is "then"; what follows is "now".
    then = StoredEvent.objects.order_by("-position").first().timestamp
    services.record_vital_signs(ctx, patient_id=patient, systolic=135, diastolic=85, weight_kg=92)
    services.resolve_diagnosis(ctx, diagnosis)
    services.resolve_allergy(ctx, allergy, reason="Tolerated an oral challenge")
    services.refute_allergy(ctx, latex, reason="Negative patch test")
    services.discontinue_medication(ctx, metformin, reason="GI upset")
    pending = services.prescribe_medication(ctx, patient_id=patient, needs_approval=True,
                                            **{**RX, "drug_code": "861007", "drug_name": "Metformin XR"})
    services.approve_prescription(second_doctor_ctx, pending.aggregate_id)
    services.amend_note(ctx, note, amendment="HbA1c 8.1%", reason="lab result arrived")
    services.draft_note(ctx, patient_id=patient, plan="Diet review")
    return {"then": then, "encounter": encounter, "diagnosis": diagnosis, "metformin": metformin,
            "note": note, "pending": pending.aggregate_id, "allergy": allergy, "latex": latex}


def test_one_row_per_clinical_event_with_encounter_and_clinical_time(registered, history):
    rows = ClinicalEventRecord.objects.filter(patient_id=registered).order_by("position")
    events = [e for e in store.read_all(0, 10_000) if e.event_type in {c.event_type for c in EVENTS}]
    assert [r.id for r in rows] == [e.id for e in events]
    by_type = {r.event_type: r for r in rows}
    assert set(by_type) == {c.event_type for c in EVENTS} - {"NoteRevised", "DiagnosisStatusChanged"}
    vitals = rows.filter(event_type="VitalSignsRecorded").first()
    assert vitals.effective_at.isoformat() == vitals.data["measured_at"].replace("Z", "+00:00")
    assert vitals.encounter_id == history["encounter"]
    # A note's later events keep its encounter; a chart measurement has none.
    assert by_type["NoteAmended"].encounter_id == history["encounter"]
    assert rows.filter(event_type="VitalSignsRecorded").last().encounter_id is None
    assert by_type["MedicationPrescribed"].data["prescriber_id"] is not None
    # An allergy's resolution keeps the encounter it was recorded in.
    assert by_type["AllergyResolved"].encounter_id == history["encounter"]


def test_read_model_indexes_are_those_the_seeds_ask_for():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "clinical_read_model")
    indexed = {tuple(c["columns"]) for c in constraints.values() if c["index"]}
    assert {("patient_id", "recorded_at"), ("event_type", "recorded_at")} <= indexed


def test_current_state_tables(registered, history):
    assert EncounterRecord.objects.get(id=history["encounter"]).status == "finished"
    assert DiagnosisRecord.objects.get(id=history["diagnosis"]).status == "resolved"
    assert dict(MedicationRecord.objects.values_list("id", "status")) == {
        history["metformin"]: "discontinued", history["pending"]: "active"}
    assert sorted(NoteRecord.objects.values_list("status", flat=True)) == ["amended", "draft"]
    assert dict(AllergyRecord.objects.values_list("id", "status")) == {
        history["allergy"]: "resolved", history["latex"]: "refuted"}
    latest = {r.measure: r.value for r in LatestVitalSign.objects.filter(patient_id=registered)}
    assert latest == {"systolic": 135, "diastolic": 85, "heart_rate": 88, "weight_kg": 92}


def _snapshot() -> dict:
    return {
        model._meta.db_table: sorted(
            (model_to_dict(row, exclude=["id"] if model is LatestVitalSign else []) | {
                "pk": str(row.pk) if model is not LatestVitalSign else None}
             for row in model.objects.all()),
            key=repr,
        )
        for model in READ_MODELS
    }


def test_read_models_equal_a_fresh_replay_of_the_log(history):
    before = _snapshot()
    assert all(before.values())
    for model in READ_MODELS:
        model.objects.all().delete()
    handled = {cls.event_type for cls in EVENTS}
    for recorded in store.iter_all():
        if recorded.event_type in handled:
            project(recorded)
    assert _snapshot() == before


def test_a_replay_does_not_apply_an_event_twice(history):
    before = _snapshot()
    last = next(e for e in reversed(list(store.iter_all())) if e.aggregate_type == "ClinicalNote")
    from medflow.clinical.projections import update_current_state
    update_current_state(last)
    assert _snapshot() == before


def test_as_of_now_equals_the_tables(doctor_ctx, registered, history):
    now = timezone.now() + timedelta(seconds=1)
    for kind in ("Encounter", "Diagnosis", "Allergy", "Prescription", "ClinicalNote"):
        current = queries.list_items(doctor_ctx, registered, kind)
        replayed = queries.list_items(doctor_ctx, registered, kind, as_of=now)
        assert [i.out() for i in replayed] == [i.out() for i in current], kind
    assert queries.latest_vitals(doctor_ctx, registered, as_of=now) == queries.latest_vitals(
        doctor_ctx, registered)
    assert queries.patient_chart(doctor_ctx, registered, as_of=now) | {"as_of": None} == (
        queries.patient_chart(doctor_ctx, registered))


def test_as_of_shows_the_record_as_it_stood(doctor_ctx, registered, history):
    then = history["then"]
    chart = queries.patient_chart(doctor_ctx, registered, as_of=then)
    assert [p["id"] for p in chart["active_problems"]] == [str(history["diagnosis"])]
    assert [(m["id"], m["status"]) for m in chart["medications"]] == [
        (str(history["metformin"]), "active")]
    assert {k: v["value"] for k, v in chart["latest_vitals"].items()} == {
        "systolic": 150, "diastolic": 95, "heart_rate": 88}
    assert [(n["id"], n["status"]) for n in chart["recent_notes"]] == [(str(history["note"]), "signed")]
    assert chart["open_encounters"] == []
    assert [(a["display"], a["status"]) for a in chart["allergies"]] == [
        ("Peanut", "active"), ("Latex", "active")]
    now = queries.patient_chart(doctor_ctx, registered)
    assert now["active_problems"] == [] and len(now["recent_notes"]) == 2
    assert now["allergies"] == []
    assert [m["id"] for m in now["medications"]] == [str(history["pending"])]
    assert len(queries.vital_signs_series(doctor_ctx, registered, as_of=then)) == 1
    assert len(queries.vital_signs_series(doctor_ctx, registered)) == 2
    note_then = queries.get_item(doctor_ctx, "ClinicalNote", history["note"], as_of=then)
    assert (note_then.state["status"], note_then.version) == ("signed", 2)
    assert queries.get_item(doctor_ctx, "ClinicalNote", history["note"]).state["status"] == "amended"


def test_chart_demographics_follow_as_of(doctor_ctx, registered, history):
    update_patient(doctor_ctx, registered, {"family_name": "King"}, expected_version=1)
    assert queries.patient_chart(doctor_ctx, registered)["patient"]["family_name"] == "King"
    then = queries.patient_chart(doctor_ctx, registered, as_of=history["then"])
    assert then["patient"]["family_name"] == "Lovelace"


def test_as_of_before_the_record_existed(doctor_ctx, registered, history):
    first = StoredEvent.objects.order_by("position").first().timestamp
    assert queries.list_items(doctor_ctx, registered, "Diagnosis", as_of=first) == []
    with pytest.raises(NotFound):
        queries.get_item(doctor_ctx, "Diagnosis", history["diagnosis"], as_of=first)


def test_vitals_series_is_in_measured_order_and_limited_to_the_latest(doctor_ctx, registered):
    now = timezone.now()
    for hours, rate in ((1, 61), (3, 63), (2, 62)):
        services.record_vital_signs(doctor_ctx, patient_id=registered, heart_rate=rate,
                                    measured_at=now - timedelta(hours=hours))
    rows = queries.vital_signs_series(doctor_ctx, registered)
    assert [r.data["heart_rate"] for r in rows] == [63, 62, 61]
    assert [r.data["heart_rate"] for r in queries.vital_signs_series(doctor_ctx, registered,
                                                                     limit=2)] == [62, 61]
    since = queries.vital_signs_series(doctor_ctx, registered, since=now - timedelta(minutes=150))
    assert [r.data["heart_rate"] for r in since] == [62, 61]


@pytest.mark.parametrize("role", ["receptionist", ""])
def test_receptionists_read_no_clinical_detail(system, clinic, registered, history, role):
    ctx = Context(user_id=None, role=role, clinic_ids=frozenset({clinic.id}))
    for read in (
        lambda: queries.patient_chart(ctx, registered),
        lambda: queries.list_items(ctx, registered, "Diagnosis"),
        lambda: queries.latest_vitals(ctx, registered),
        lambda: queries.vital_signs_series(ctx, registered),
        lambda: queries.get_item(ctx, "ClinicalNote", history["note"]),
    ):
        with pytest.raises(PermissionDenied):
            read()


def test_admins_read_and_other_clinics_find_nothing(clinic, other_clinic, registered, history):
    admin = Context(user_id=None, role="admin", clinic_ids=frozenset({clinic.id}))
    assert queries.patient_chart(admin, registered)["patient"]["id"] == str(registered)
    stranger = Context(user_id=None, role="doctor", clinic_ids=frozenset({other_clinic.id}))
    for read in (
        lambda: queries.patient_chart(stranger, registered),
        lambda: queries.list_items(stranger, registered, "Prescription"),
        lambda: queries.get_item(stranger, "Encounter", history["encounter"]),
    ):
        with pytest.raises(NotFound):
            read()
