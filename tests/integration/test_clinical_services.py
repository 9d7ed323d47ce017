"""Clinical application services: invariants, roles, clinic scope, nothing written on refusal."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from medflow.clinical import services
from medflow.clinical.domain import chart_id
from medflow.clinical.models import (
    ClinicalEventRecord,
    DiagnosisRecord,
    EncounterRecord,
    LatestVitalSign,
    MedicationRecord,
    NoteRecord,
)
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
from medflow.eventstore.models import StoredEvent
from medflow.patients.services import archive_patient, register_patient
from medflow.timeline.models import TimelineEntry
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db

DX = {"code_system": "ICD-10", "code": "J06.9", "display": "Acute upper respiratory infection"}
RX = {"drug_code": "198405", "drug_name": "Ibuprofen 100 MG Oral Tablet", "dose": "200 mg",
      "route": "oral", "frequency": "every 8 hours", "reason": "pain"}


def staff_ctx(system, clinic, username: str, role: str) -> Context:
    user = make_staff(system, clinic, username, role)
    return Context(user_id=user.pk, username=username, role=role, clinic_ids=frozenset({clinic.id}))


@pytest.fixture
def nurse_ctx(system, clinic):
    return staff_ctx(system, clinic, "nurse_joy", "nurse")


@pytest.fixture
def second_doctor_ctx(system, clinic):
    return staff_ctx(system, clinic, "dr_cuddy", "doctor")


@pytest.fixture
def encounter(doctor_ctx, registered):
    return services.start_encounter(doctor_ctx, patient_id=registered, provider_id=None,
                                    reason="cough").aggregate_id


def count() -> int:
    return StoredEvent.objects.count()


# Encounters -------------------------------------------------------------------------------------

def test_start_encounter_writes_event_read_model_and_timeline(doctor_ctx, clinic, registered,
                                                              encounter):
    row = EncounterRecord.objects.get(id=encounter)
    assert (row.patient_id, row.clinic_id, row.status, row.version) == (
        registered, clinic.id, "in_progress", 1)
    assert row.provider_id == doctor_ctx.user_id  # the doctor who started it
    event = store.load(encounter)[0]
    assert (event.event_type, event.metadata["command"]) == ("EncounterStarted", "StartEncounter")
    entry = TimelineEntry.objects.get(event_id=event.id)
    assert (entry.kind, entry.summary) == ("encounter", "Ambulatory encounter started: cough")


def test_start_encounter_is_idempotent_by_encounter_id(system, registered, doctor):
    encounter_id = uuid.uuid4()
    appointment = uuid.uuid4()
    first = services.start_encounter(system, patient_id=registered, provider_id=doctor.pk,
                                     appointment_id=appointment, encounter_id=encounter_id)
    before = count()
    again = services.start_encounter(system, patient_id=registered, provider_id=doctor.pk,
                                     appointment_id=appointment, encounter_id=encounter_id)
    assert (again.aggregate_id, again.version, again.replayed) == (encounter_id, 1, True)
    assert first.replayed is False and count() == before
    assert EncounterRecord.objects.get(id=encounter_id).state["appointment_id"] == str(appointment)


def test_an_encounter_id_of_another_patient_is_a_conflict(system, clinic, registered, doctor,
                                                          patient_fields):
    other = register_patient(system, clinic_id=clinic.id, **{**patient_fields, "mrn": "MRN-2"})
    encounter_id = services.start_encounter(system, patient_id=registered, provider_id=doctor.pk
                                            ).aggregate_id
    with pytest.raises(Conflict) as err:
        services.start_encounter(system, patient_id=other.aggregate_id, provider_id=doctor.pk,
                                 encounter_id=encounter_id)
    assert err.value.code == "encounter_exists"


def test_provider_must_be_a_clinician_of_the_clinic(system, clinic, other_clinic, doctor_ctx,
                                                    registered):
    clerk = make_staff(system, clinic, "clerk", "receptionist")
    stranger = make_staff(system, other_clinic, "dr_far", "doctor")
    before = count()
    for provider in (clerk.pk, stranger.pk, 999_999):
        with pytest.raises(InvalidInput) as err:
            services.start_encounter(doctor_ctx, patient_id=registered, provider_id=provider)
        assert err.value.field == "provider_id"
    assert count() == before


def test_walk_in_and_bad_kind(nurse_ctx, registered):
    result = services.start_encounter(nurse_ctx, patient_id=registered, provider_id=None,
                                      kind="walk_in")
    assert EncounterRecord.objects.get(id=result.aggregate_id).state["kind"] == "walk_in"
    with pytest.raises(InvalidInput) as err:
        services.start_encounter(nurse_ctx, patient_id=registered, provider_id=None,
                                 kind="walk_in", appointment_id=uuid.uuid4())
    assert err.value.field == "appointment_id"


def test_end_encounter_once_then_nothing_recorded_on_it(nurse_ctx, doctor_ctx, registered,
                                                        encounter):
    result = services.end_encounter(nurse_ctx, encounter, disposition="home",
                                    closing_summary="Rest and fluids", expected_version=1)
    row = EncounterRecord.objects.get(id=encounter)
    assert (result.version, row.status, row.state["disposition"]) == (2, "finished", "home")
    assert row.ended_at is not None
    before = count()
    with pytest.raises(RuleViolated) as err:
        services.end_encounter(nurse_ctx, encounter)
    assert err.value.code == "encounter_ended"
    with pytest.raises(RuleViolated) as err:
        services.record_vital_signs(nurse_ctx, patient_id=registered, encounter_id=encounter,
                                    heart_rate=80)
    assert err.value.code == "encounter_ended"
    with pytest.raises(RuleViolated):
        services.add_diagnosis(doctor_ctx, patient_id=registered, encounter_id=encounter, **DX)
    with pytest.raises(RuleViolated):
        services.prescribe_medication(doctor_ctx, patient_id=registered, encounter_id=encounter,
                                      **RX)
    assert count() == before


def test_end_encounter_checks_version(nurse_ctx, encounter):
    with pytest.raises(VersionConflict):
        services.end_encounter(nurse_ctx, encounter, expected_version=5)
    assert EncounterRecord.objects.get(id=encounter).status == "in_progress"


# Vital signs ------------------------------------------------------------------------------------

def test_vitals_outside_an_encounter_go_to_the_patients_chart(nurse_ctx, registered):
    first = services.record_vital_signs(nurse_ctx, patient_id=registered, systolic=130,
                                        diastolic=85, heart_rate=70)
    second = services.record_vital_signs(nurse_ctx, patient_id=registered, heart_rate=75)
    assert first.aggregate_id == second.aggregate_id == chart_id(registered)
    assert (first.version, second.version) == (1, 2)
    latest = {r.measure: r.value for r in LatestVitalSign.objects.filter(patient_id=registered)}
    assert latest == {"systolic": 130, "diastolic": 85, "heart_rate": 75}
    entry = TimelineEntry.objects.get(event_id=first.events[0].id)
    assert (entry.kind, entry.summary) == ("vitals", "BP 130/85 mmHg, HR 70 bpm")


def test_vitals_in_an_encounter_go_to_the_encounter(nurse_ctx, registered, encounter):
    result = services.record_vital_signs(nurse_ctx, patient_id=registered, encounter_id=encounter,
                                         spo2=96)
    assert (result.aggregate_id, result.version) == (encounter, 2)
    assert ClinicalEventRecord.objects.get(id=result.events[0].id).encounter_id == encounter
    assert EncounterRecord.objects.get(id=encounter).state["vital_signs_count"] == 1


def test_vitals_on_another_patients_encounter_are_refused(system, clinic, nurse_ctx, registered,
                                                          encounter, patient_fields):
    other = register_patient(system, clinic_id=clinic.id, **{**patient_fields, "mrn": "MRN-2"})
    before = count()
    for encounter_id in (encounter, uuid.uuid4()):
        with pytest.raises(InvalidInput) as err:
            services.record_vital_signs(nurse_ctx, patient_id=other.aggregate_id,
                                        encounter_id=encounter_id, heart_rate=80)
        assert err.value.field == "encounter_id"
    assert count() == before


def test_out_of_range_vitals_write_nothing(nurse_ctx, registered):
    before = count()
    with pytest.raises(InvalidInput) as err:
        services.record_vital_signs(nurse_ctx, patient_id=registered, heart_rate=400)
    assert err.value.message == "heart_rate must be between 20 and 300 bpm"
    assert count() == before and not LatestVitalSign.objects.exists()


def test_a_late_entry_does_not_replace_a_newer_latest_value(nurse_ctx, registered):
    now = timezone.now()
    services.record_vital_signs(nurse_ctx, patient_id=registered, weight_kg=80, measured_at=now)
    services.record_vital_signs(nurse_ctx, patient_id=registered, weight_kg=85, heart_rate=60,
                                measured_at=now - timedelta(days=1))
    latest = {r.measure: r.value for r in LatestVitalSign.objects.filter(patient_id=registered)}
    assert latest == {"weight_kg": 80, "heart_rate": 60}


# Diagnoses --------------------------------------------------------------------------------------

def test_diagnosis_lifecycle(doctor_ctx, registered, encounter):
    added = services.add_diagnosis(doctor_ctx, patient_id=registered, encounter_id=encounter,
                                   onset_date="2026-01-05", **DX)
    row = DiagnosisRecord.objects.get(id=added.aggregate_id)
    assert (row.status, row.code_system, row.code) == ("active", "ICD-10", "J06.9")
    assert row.state["recorded_by"] == doctor_ctx.user_id
    services.change_diagnosis_status(doctor_ctx, added.aggregate_id, clinical_status="remission",
                                     expected_version=1)
    resolved = services.resolve_diagnosis(doctor_ctx, added.aggregate_id, resolved_on="2026-01-20",
                                          expected_version=2)
    row.refresh_from_db()
    assert (resolved.version, row.status, row.state["resolved_on"]) == (3, "resolved", "2026-01-20")
    # Follow-up events keep the encounter of the diagnosis they belong to.
    assert set(ClinicalEventRecord.objects.filter(aggregate_id=added.aggregate_id)
               .values_list("encounter_id", flat=True)) == {encounter}


def test_only_doctors_diagnose(nurse_ctx, doctor_ctx, registered):
    before = count()
    with pytest.raises(PermissionDenied):
        services.add_diagnosis(nurse_ctx, patient_id=registered, **DX)
    added = services.add_diagnosis(doctor_ctx, patient_id=registered, **DX)
    with pytest.raises(PermissionDenied):
        services.resolve_diagnosis(nurse_ctx, added.aggregate_id)
    with pytest.raises(PermissionDenied):
        services.change_diagnosis_status(nurse_ctx, added.aggregate_id, clinical_status="inactive")
    assert count() == before + 1


# Prescriptions ----------------------------------------------------------------------------------

def test_prescription_needing_approval_waits_for_another_doctor(doctor_ctx, second_doctor_ctx,
                                                                registered):
    result = services.prescribe_medication(doctor_ctx, patient_id=registered, needs_approval=True,
                                           **RX)
    row = MedicationRecord.objects.get(id=result.aggregate_id)
    assert (row.status, row.state["prescriber_id"]) == ("pending", doctor_ctx.user_id)
    with pytest.raises(RuleViolated) as err:
        services.approve_prescription(doctor_ctx, result.aggregate_id)
    assert err.value.code == "self_approval"
    services.approve_prescription(second_doctor_ctx, result.aggregate_id, expected_version=1)
    row.refresh_from_db()
    assert (row.status, row.state["approved_by"]) == ("active", second_doctor_ctx.user_id)
    with pytest.raises(RuleViolated) as err:
        services.approve_prescription(second_doctor_ctx, result.aggregate_id)
    assert err.value.code == "already_approved"


def test_discontinue_needs_a_reason_and_ends_approval(doctor_ctx, second_doctor_ctx, registered):
    result = services.prescribe_medication(doctor_ctx, patient_id=registered, needs_approval=True,
                                           **RX)
    before = count()
    with pytest.raises(InvalidInput) as err:
        services.discontinue_medication(doctor_ctx, result.aggregate_id, reason=None)
    assert err.value.field == "reason" and count() == before
    services.discontinue_medication(doctor_ctx, result.aggregate_id, reason="rash")
    assert MedicationRecord.objects.get(id=result.aggregate_id).status == "discontinued"
    assert store.load(result.aggregate_id)[-1].metadata["reason"] == "rash"
    with pytest.raises(RuleViolated) as err:
        services.approve_prescription(second_doctor_ctx, result.aggregate_id)
    assert err.value.code == "discontinued"


def test_only_doctors_prescribe_and_approve(nurse_ctx, doctor_ctx, registered):
    with pytest.raises(PermissionDenied):
        services.prescribe_medication(nurse_ctx, patient_id=registered, **RX)
    result = services.prescribe_medication(doctor_ctx, patient_id=registered, needs_approval=True,
                                           **RX)
    with pytest.raises(PermissionDenied):
        services.approve_prescription(nurse_ctx, result.aggregate_id)
    with pytest.raises(PermissionDenied):
        services.discontinue_medication(nurse_ctx, result.aggregate_id, reason="x")


# Notes ------------------------------------------------------------------------------------------

def test_note_drafted_by_nurse_signed_and_amended_by_doctor(nurse_ctx, doctor_ctx, registered,
                                                            encounter):
    note = services.draft_note(nurse_ctx, patient_id=registered, encounter_id=encounter,
                               subjective="Cough", objective="T 37.9").aggregate_id
    services.revise_note(nurse_ctx, note, {"assessment": "URTI"}, expected_version=1)
    with pytest.raises(PermissionDenied):
        services.sign_note(nurse_ctx, note)
    services.sign_note(doctor_ctx, note, expected_version=2)
    with pytest.raises(RuleViolated) as err:
        services.revise_note(doctor_ctx, note, {"plan": "rest"})
    assert err.value.code == "note_signed"
    with pytest.raises(PermissionDenied):
        services.amend_note(nurse_ctx, note, amendment="x", reason="y")
    services.amend_note(doctor_ctx, note, amendment="T was 38.9", reason="transcription error",
                        expected_version=3)
    row = NoteRecord.objects.get(id=note)
    assert (row.status, row.version, row.author_id, row.encounter_id) == (
        "amended", 4, nurse_ctx.user_id, encounter)
    assert row.state["signed_by"] == doctor_ctx.user_id
    assert row.state["amendments"][0]["reason"] == "transcription error"
    assert store.load(note)[-1].metadata["reason"] == "transcription error"


def test_a_nurse_revises_only_her_own_drafts(system, clinic, nurse_ctx, doctor_ctx, registered):
    other_nurse = staff_ctx(system, clinic, "nurse_ratched", "nurse")
    note = services.draft_note(doctor_ctx, patient_id=registered, plan="Review in a week")
    with pytest.raises(PermissionDenied):
        services.revise_note(nurse_ctx, note.aggregate_id, {"plan": "Review tomorrow"})
    mine = services.draft_note(nurse_ctx, patient_id=registered, subjective="Dizzy")
    with pytest.raises(PermissionDenied):
        services.revise_note(other_nurse, mine.aggregate_id, {"subjective": "Very dizzy"})
    services.revise_note(doctor_ctx, mine.aggregate_id, {"subjective": "Very dizzy"})
    assert NoteRecord.objects.get(id=mine.aggregate_id).state["subjective"] == "Very dizzy"


# Roles, scope, archive, idempotency -------------------------------------------------------------

def _every_write(ctx, patient_id, ids):
    return [
        lambda: services.start_encounter(ctx, patient_id=patient_id, provider_id=None),
        lambda: services.end_encounter(ctx, ids["encounter"]),
        lambda: services.record_vital_signs(ctx, patient_id=patient_id, heart_rate=70),
        lambda: services.add_diagnosis(ctx, patient_id=patient_id, **DX),
        lambda: services.resolve_diagnosis(ctx, ids["diagnosis"]),
        lambda: services.change_diagnosis_status(ctx, ids["diagnosis"], clinical_status="inactive"),
        lambda: services.prescribe_medication(ctx, patient_id=patient_id, **RX),
        lambda: services.approve_prescription(ctx, ids["prescription"]),
        lambda: services.discontinue_medication(ctx, ids["prescription"], reason="x"),
        lambda: services.draft_note(ctx, patient_id=patient_id, plan="x"),
        lambda: services.revise_note(ctx, ids["note"], {"plan": "y"}),
        lambda: services.sign_note(ctx, ids["note"]),
        lambda: services.amend_note(ctx, ids["note"], amendment="x", reason="y"),
    ]


@pytest.fixture
def ids(doctor_ctx, registered, encounter):
    return {
        "encounter": encounter,
        "diagnosis": services.add_diagnosis(doctor_ctx, patient_id=registered, **DX).aggregate_id,
        "prescription": services.prescribe_medication(doctor_ctx, patient_id=registered,
                                                      needs_approval=True, **RX).aggregate_id,
        "note": services.draft_note(doctor_ctx, patient_id=registered, plan="x").aggregate_id,
    }


@pytest.mark.parametrize("role", ["receptionist", "admin", ""])
def test_receptionists_and_admins_write_nothing(system, clinic, registered, ids, role):
    ctx = staff_ctx(system, clinic, f"user_{role or 'none'}", role) if role else Context(
        user_id=None, clinic_ids=frozenset({clinic.id}))
    before = count()
    for write in _every_write(ctx, registered, ids):
        with pytest.raises(PermissionDenied):
            write()
    assert count() == before


def test_another_clinics_staff_find_nothing(system, other_clinic, registered, ids):
    stranger = staff_ctx(system, other_clinic, "dr_far", "doctor")
    before = count()
    for write in _every_write(stranger, registered, ids):
        with pytest.raises(NotFound):
            write()
    assert count() == before


def test_an_archived_patient_takes_no_new_clinical_entries(doctor_ctx, registered, ids):
    archive_patient(doctor_ctx, registered, reason="moved away")
    before = count()
    for create in (
        lambda: services.start_encounter(doctor_ctx, patient_id=registered, provider_id=None),
        lambda: services.record_vital_signs(doctor_ctx, patient_id=registered, heart_rate=70),
        lambda: services.add_diagnosis(doctor_ctx, patient_id=registered, **DX),
        lambda: services.prescribe_medication(doctor_ctx, patient_id=registered, **RX),
        lambda: services.draft_note(doctor_ctx, patient_id=registered, plan="x"),
    ):
        with pytest.raises(RuleViolated) as err:
            create()
        assert err.value.code == "patient_archived"
    assert count() == before
    # What is open can still be closed.
    services.end_encounter(doctor_ctx, ids["encounter"])
    services.discontinue_medication(doctor_ctx, ids["prescription"], reason="patient left")


def test_a_retried_command_id_records_once(nurse_ctx, registered):
    command = uuid.uuid4()
    first = services.record_vital_signs(nurse_ctx, patient_id=registered, heart_rate=70,
                                        command_id=command)
    again = services.record_vital_signs(nurse_ctx, patient_id=registered, heart_rate=70,
                                        command_id=command)
    assert (again.aggregate_id, again.version, again.replayed) == (first.aggregate_id, 1, True)
    assert StoredEvent.objects.filter(event_type="VitalSignsRecorded").count() == 1


def test_clinical_aggregates_load_from_snapshots(settings, nurse_ctx, doctor_ctx, registered,
                                                 encounter):
    from medflow.clinical.domain import Chart, ClinicalNote, Encounter
    from medflow.eventstore.commands import load_aggregate
    from medflow.eventstore.models import Snapshot

    settings.MEDFLOW_SNAPSHOT_EVERY = 2
    for rate in (60, 61, 62):
        services.record_vital_signs(nurse_ctx, patient_id=registered, encounter_id=encounter,
                                    heart_rate=rate)
        services.record_vital_signs(nurse_ctx, patient_id=registered, heart_rate=rate)
    note = services.draft_note(doctor_ctx, patient_id=registered, subjective="a").aggregate_id
    services.revise_note(doctor_ctx, note, {"subjective": "b"})
    services.sign_note(doctor_ctx, note)
    services.amend_note(doctor_ctx, note, amendment="c", reason="d")
    for cls, stream in ((Encounter, encounter), (Chart, chart_id(registered)),
                        (ClinicalNote, note)):
        assert Snapshot.objects.filter(aggregate_id=stream).exists(), cls
        from_snapshot = load_aggregate(cls, stream)
        replayed = cls.replay(stream, [e.event for e in store.load(stream)])
        assert (from_snapshot.state(), from_snapshot.version) == (replayed.state(), replayed.version)
    services.end_encounter(nurse_ctx, encounter, expected_version=4)
