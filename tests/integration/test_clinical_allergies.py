"""Allergies through the clinical services: read model, timeline, sealing, roles, scope, as_of."""

from datetime import timedelta

import pytest
from django.utils import timezone

from medflow.clinical import queries, services
from medflow.clinical.models import AllergyRecord, ClinicalEventRecord
from medflow.context import Context, system_context
from medflow.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RuleViolated
from medflow.eventstore import store
from medflow.eventstore.models import StoredEvent
from medflow.patients.services import archive_patient, forget_patient
from medflow.timeline.models import TimelineEntry
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db

NOTE = "Swelled up after the Tuesday dose, wife called 911"
PENICILLIN = {"code_system": "RxNorm", "code": "7980", "display": "Penicillin G",
              "category": "medication", "criticality": "high", "onset_date": "2019-05-01",
              "reactions": [{"manifestation": "Anaphylaxis", "code": "39579001",
                             "severity": "severe"}],
              "note": NOTE}
PEANUT = {"code_system": "SNOMED CT", "code": "762952008", "display": "Peanut",
          "category": "food", "criticality": "low",
          "reactions": [{"manifestation": "Hives", "severity": "mild"}]}


def staff_ctx(system, clinic, username: str, role: str) -> Context:
    user = make_staff(system, clinic, username, role)
    return Context(user_id=user.pk, username=username, role=role, clinic_ids=frozenset({clinic.id}))


@pytest.fixture
def nurse_ctx(system, clinic):
    return staff_ctx(system, clinic, "nurse_joy", "nurse")


@pytest.fixture
def penicillin(nurse_ctx, registered):
    return services.record_allergy(nurse_ctx, patient_id=registered, **PENICILLIN).aggregate_id


def test_a_nurse_records_an_allergy_read_model_timeline(nurse_ctx, registered, penicillin):
    row = AllergyRecord.objects.get(id=penicillin)
    assert (row.patient_id, row.status, row.code_system, row.code, row.category,
            row.criticality, row.version) == (registered, "active", "RxNorm", "7980",
                                              "medication", "high", 1)
    assert row.state["reactions"] == [{"manifestation": "Anaphylaxis", "code": "39579001",
                                       "severity": "severe"}]
    assert row.state["recorded_by"] == nurse_ctx.user_id and row.state["note"] == NOTE
    event = ClinicalEventRecord.objects.get(aggregate_id=penicillin)
    assert (event.event_type, event.aggregate_type, event.effective_at.date().isoformat()) == (
        "AllergyRecorded", "Allergy", "2019-05-01")
    entry = TimelineEntry.objects.get(aggregate_id=penicillin)
    assert (entry.kind, entry.summary) == (
        "allergy", "Allergy: Penicillin G (medication, high criticality)")


def test_the_note_is_sealed_at_rest(penicillin):
    raw = StoredEvent.objects.get(aggregate_id=penicillin).event_data
    assert NOTE not in str(raw) and raw["_sealed"]["f"] == ["note"]
    assert raw["display"] == "Penicillin G"  # coded data stays in clear
    assert store.load(penicillin)[0].event.note == NOTE


def test_the_same_substance_is_not_listed_twice_while_active(doctor_ctx, registered, penicillin):
    before = StoredEvent.objects.count()
    with pytest.raises(Conflict) as err:
        services.record_allergy(doctor_ctx, patient_id=registered,
                                **{**PENICILLIN, "code_system": "rxnorm", "display": "PCN"})
    assert (err.value.code, err.value.field) == ("allergy_exists", "code")
    assert StoredEvent.objects.count() == before
    services.refute_allergy(doctor_ctx, penicillin, reason="Negative skin test")
    again = services.record_allergy(doctor_ctx, patient_id=registered, **PENICILLIN)
    assert AllergyRecord.objects.get(id=again.aggregate_id).status == "active"


def test_resolve_and_refute_by_a_doctor_with_a_reason(doctor_ctx, nurse_ctx, registered,
                                                       penicillin):
    peanut = services.record_allergy(nurse_ctx, patient_id=registered, **PEANUT).aggregate_id
    for change in (lambda: services.resolve_allergy(nurse_ctx, peanut, reason="outgrown"),
                   lambda: services.refute_allergy(nurse_ctx, peanut, reason="wrong")):
        with pytest.raises(PermissionDenied):
            change()
    with pytest.raises(InvalidInput) as err:
        services.resolve_allergy(doctor_ctx, peanut, reason=None)
    assert err.value.field == "reason"
    resolved = services.resolve_allergy(doctor_ctx, peanut, reason="Tolerated an oral challenge",
                                        expected_version=1)
    assert resolved.version == 2
    row = AllergyRecord.objects.get(id=peanut)
    assert (row.status, row.state["resolved_on"], row.state["status_reason"]) == (
        "resolved", timezone.localdate().isoformat(), "Tolerated an oral challenge")
    with pytest.raises(RuleViolated) as err:
        services.resolve_allergy(doctor_ctx, peanut, reason="again")
    assert err.value.code == "already_resolved"
    services.refute_allergy(doctor_ctx, penicillin, reason="Wrong chart", entered_in_error=True)
    assert AllergyRecord.objects.get(id=penicillin).status == "entered-in-error"
    summaries = list(TimelineEntry.objects.filter(kind="allergy").order_by("position")
                     .values_list("summary", flat=True))
    assert summaries[-2:] == [f"Allergy resolved on {timezone.localdate().isoformat()}",
                              "Allergy entered in error"]


def test_lists_filter_by_status_and_the_chart_shows_active_ones_critical_first(
        doctor_ctx, nurse_ctx, registered, penicillin):
    peanut = services.record_allergy(nurse_ctx, patient_id=registered, **PEANUT).aggregate_id
    latex = services.record_allergy(nurse_ctx, patient_id=registered, code_system="SNOMED CT",
                                    code="111088007", display="Latex", category="environment"
                                    ).aggregate_id
    services.resolve_allergy(doctor_ctx, latex, reason="desensitised")
    listed = queries.list_items(doctor_ctx, registered, "Allergy")
    assert [i.state["id"] for i in listed] == [str(latex), str(peanut), str(penicillin)]
    active = queries.list_items(doctor_ctx, registered, "Allergy", statuses=["active"])
    assert {i.state["id"] for i in active} == {str(peanut), str(penicillin)}
    chart = queries.patient_chart(doctor_ctx, registered)
    # Newest first, except that high criticality comes before everything else.
    assert [a["display"] for a in chart["allergies"]] == ["Penicillin G", "Peanut"]


def test_as_of_shows_the_allergies_as_they_stood(doctor_ctx, registered, penicillin):
    then = StoredEvent.objects.order_by("-position").first().timestamp
    services.refute_allergy(doctor_ctx, penicillin, reason="Negative skin test")
    assert queries.patient_chart(doctor_ctx, registered)["allergies"] == []
    old = queries.patient_chart(doctor_ctx, registered, as_of=then)
    assert [(a["id"], a["status"]) for a in old["allergies"]] == [(str(penicillin), "active")]
    item = queries.get_item(doctor_ctx, "Allergy", penicillin, as_of=then)
    assert (item.state["status"], item.version) == ("active", 1)
    now = timezone.now() + timedelta(seconds=1)
    assert [i.out() for i in queries.list_items(doctor_ctx, registered, "Allergy", as_of=now)] == [
        i.out() for i in queries.list_items(doctor_ctx, registered, "Allergy")]


def test_an_allergy_on_an_ended_encounter_is_refused(doctor_ctx, registered):
    encounter = services.start_encounter(doctor_ctx, patient_id=registered,
                                         provider_id=None).aggregate_id
    services.end_encounter(doctor_ctx, encounter)
    with pytest.raises(RuleViolated) as err:
        services.record_allergy(doctor_ctx, patient_id=registered, encounter_id=encounter, **PEANUT)
    assert err.value.code == "encounter_ended"


@pytest.mark.parametrize("role", ["receptionist", "admin", ""])
def test_receptionists_and_admins_write_nothing(system, clinic, registered, penicillin, role):
    ctx = staff_ctx(system, clinic, f"user_{role or 'none'}", role) if role else Context(
        user_id=None, clinic_ids=frozenset({clinic.id}))
    before = StoredEvent.objects.count()
    for write in (lambda: services.record_allergy(ctx, patient_id=registered, **PEANUT),
                  lambda: services.resolve_allergy(ctx, penicillin, reason="x"),
                  lambda: services.refute_allergy(ctx, penicillin, reason="x")):
        with pytest.raises(PermissionDenied):
            write()
    assert StoredEvent.objects.count() == before


def test_another_clinic_finds_nothing(system, other_clinic, registered, penicillin):
    stranger = staff_ctx(system, other_clinic, "dr_far", "doctor")
    for call in (lambda: services.record_allergy(stranger, patient_id=registered, **PEANUT),
                 lambda: services.resolve_allergy(stranger, penicillin, reason="x"),
                 lambda: services.refute_allergy(stranger, penicillin, reason="x"),
                 lambda: queries.list_items(stranger, registered, "Allergy"),
                 lambda: queries.get_item(stranger, "Allergy", penicillin)):
        with pytest.raises(NotFound):
            call()


def test_an_archived_patient_takes_no_new_allergy_but_one_may_be_refuted(doctor_ctx, registered,
                                                                          penicillin):
    archive_patient(doctor_ctx, registered, reason="moved away")
    with pytest.raises(RuleViolated) as err:
        services.record_allergy(doctor_ctx, patient_id=registered, **PEANUT)
    assert err.value.code == "patient_archived"
    services.refute_allergy(doctor_ctx, penicillin, reason="Wrong chart", entered_in_error=True)


def test_allergies_hold_back_forgetting_and_go_with_the_patient(doctor_ctx, registered,
                                                                penicillin):
    with pytest.raises(RuleViolated):
        forget_patient(system_context("t"), registered, reason="erasure request")
    forget_patient(system_context("t"), registered, reason="erasure request",
                   override_retention=True)
    assert not AllergyRecord.objects.filter(patient_id=registered).exists()
    assert store.load(penicillin)[0].event.note == "[redacted]"
