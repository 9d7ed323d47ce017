"""Allergies in the web UI: the chart shows the active ones (high criticality marked, also in the
"as of" view), the form records one or shows refusals next to their fields, and a doctor takes
one off the list."""

import re

import pytest
from django.utils import timezone

from medflow.clinical import services as clinical
from medflow.clinical.models import AllergyRecord
from medflow.eventstore.models import StoredEvent
from tests.conftest import make_staff
from tests.e2e.test_web_forms import browser, field_error, text

pytestmark = pytest.mark.django_db

FORM = {"display": "Penicillin G", "code_system": "RxNorm", "code": "7980",
        "category": "medication", "type": "allergy", "criticality": "high",
        "manifestation": "Anaphylaxis", "severity": "severe", "onset_date": "2019-05-01",
        "note": "Collapsed after amoxicillin"}


@pytest.fixture
def web(doctor):
    return browser(doctor)


def allergies_section(page: str) -> str:
    return page.split('id="allergies"', 1)[1].split("</section>", 1)[0]


def test_an_empty_list_does_not_read_as_no_known_allergies(web, registered):
    section = allergies_section(text(web.get(f"/patients/{registered}/")))
    assert "No allergies recorded" in section and 'not "no known allergies"' in section


def test_record_an_allergy_and_see_it_on_the_chart(web, registered):
    page = text(web.get(f"/patients/{registered}/"))
    assert f"/patients/{registered}/allergies/new/" in page
    response = web.post(f"/patients/{registered}/allergies/new/", FORM)
    assert response.status_code == 302 and response["Location"].endswith("#allergies")
    row = AllergyRecord.objects.get(patient_id=registered)
    assert (row.status, row.criticality, row.state["reactions"]) == (
        "active", "high", [{"manifestation": "Anaphylaxis", "code": None, "severity": "severe"}])
    chart = text(web.get(f"/patients/{registered}/"))
    section = allergies_section(chart)
    assert "Allergy recorded." in chart
    assert "Allergies (1)" in section and "<strong>Penicillin G</strong>" in section
    assert '<span class="flag flag-H">High criticality</span>' in section
    assert "Anaphylaxis (severe)" in section and "Collapsed after amoxicillin" in section
    timeline = web.get(f"/patients/{registered}/timeline/", {"kind": "allergy"})
    assert timeline.status_code == 200
    assert "Allergy: Penicillin G (medication, high criticality)" in text(timeline)


def test_a_low_criticality_allergy_is_not_flagged(web, doctor_ctx, registered):
    clinical.record_allergy(doctor_ctx, patient_id=registered, code_system="SNOMED CT",
                            code="762952008", display="Peanut", category="food",
                            criticality="low", type="intolerance")
    section = allergies_section(text(web.get(f"/patients/{registered}/")))
    assert "Peanut</strong> (intolerance)" in section and "criticality low" in section
    assert "flag" not in section


@pytest.mark.parametrize(("changes", "field"), [
    ({"code": "penicillin"}, "code"),
    ({"onset_date": "2999-01-01"}, "onset_date"),
    ({"onset_date": "last spring"}, "onset_date"),
    ({"manifestation": "", "severity": "mild"}, "manifestation"),
    ({"note": "x" * 501}, "note"),
    ({"category": ""}, "category"),
    ({"display": "", "code": ""}, "display"),
])
def test_refusals_are_shown_next_to_their_field(web, registered, changes, field):
    before = StoredEvent.objects.count()
    response = web.post(f"/patients/{registered}/allergies/new/", {**FORM, **changes})
    assert response.status_code == 422
    assert field_error(text(response), field)
    assert StoredEvent.objects.count() == before


def test_both_required_fields_are_marked_at_once(web, registered):
    page = text(web.post(f"/patients/{registered}/allergies/new/", {**FORM, "display": "",
                                                                    "code": ""}))
    assert field_error(page, "display") == "Substance is required."
    assert field_error(page, "code") == "Code is required."


def test_a_substance_listed_twice_is_refused_next_to_the_code(web, registered):
    web.post(f"/patients/{registered}/allergies/new/", FORM)
    page = text(web.post(f"/patients/{registered}/allergies/new/", FORM))
    assert "already on the patient&#x27;s active allergies" in field_error(page, "code")


def test_a_doctor_resolves_and_the_as_of_view_still_shows_it(web, doctor_ctx, registered):
    clinical.record_allergy(doctor_ctx, patient_id=registered, **{
        k: FORM[k] for k in ("display", "code_system", "code", "category", "criticality")})
    before_resolving = timezone.localtime()
    page = text(web.get(f"/patients/{registered}/"))
    url = re.search(r'href="(/patients/[^"]+/allergies/[0-9a-f-]{36}/close/)"', page).group(1)
    assert text(web.get(url)).count('name="version" value="1"') == 1
    refused = web.post(url, {"outcome": "resolved", "reason": "", "version": "1"})
    assert refused.status_code == 422 and field_error(text(refused), "reason")
    response = web.post(url, {"outcome": "resolved", "reason": "Tolerated a challenge",
                              "version": "1"})
    assert response.status_code == 302
    section = allergies_section(text(web.get(f"/patients/{registered}/")))
    assert "Allergies (0)" in section and "Penicillin G" not in section
    as_of = before_resolving.strftime("%Y-%m-%dT%H:%M:%S.%f")
    then = allergies_section(text(web.get(f"/patients/{registered}/", {"as_of": as_of})))
    assert "Penicillin G" in then and "High criticality" in then
    assert "/close/" not in then  # a historical view takes no actions


def test_a_stale_version_explains_the_conflict(web, doctor_ctx, registered):
    allergy = clinical.record_allergy(doctor_ctx, patient_id=registered, **{
        k: FORM[k] for k in ("display", "code_system", "code", "category")}).aggregate_id
    clinical.refute_allergy(doctor_ctx, allergy, reason="Negative skin test")
    url = f"/patients/{registered}/allergies/{allergy}/close/"
    response = web.post(url, {"outcome": "entered-in-error", "reason": "wrong chart",
                              "version": "1"})
    assert response.status_code == 409 and "was changed by" in text(response)


def test_a_nurse_records_but_may_not_take_one_off(system, clinic, doctor_ctx, registered):
    nurse = browser(make_staff(system, clinic, "nurse_joy", "nurse"))
    assert nurse.post(f"/patients/{registered}/allergies/new/", FORM).status_code == 302
    page = text(nurse.get(f"/patients/{registered}/"))
    assert "/close/" not in allergies_section(page)
    allergy = AllergyRecord.objects.get(patient_id=registered).id
    response = nurse.post(f"/patients/{registered}/allergies/{allergy}/close/",
                          {"outcome": "refuted", "reason": "x", "version": "1"})
    assert response.status_code == 422 and "doctor" in text(response)
    assert AllergyRecord.objects.get(id=allergy).status == "active"


def test_a_receptionist_sees_no_allergies(system, clinic, doctor_ctx, registered):
    clinical.record_allergy(doctor_ctx, patient_id=registered, **{
        k: FORM[k] for k in ("display", "code_system", "code", "category")})
    desk = browser(make_staff(system, clinic, "front_desk", "receptionist"))
    page = text(desk.get(f"/patients/{registered}/"))
    assert 'id="allergies"' not in page and "Penicillin" not in page
