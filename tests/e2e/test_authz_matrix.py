"""Every API route, as every staff role, on its own clinic and on a foreign one, against the table.

The routes come from the API's own OpenAPI description, so a route added later is covered, or the
test fails and names it: add it to CASES below with a minimal valid body and its permission.

For each call, in its own savepoint that is rolled back (one world serves every call):
- own clinic: 2xx exactly when medflow.access.permissions allows the role, else 403 (a body that
  fails validation answers 422 and fails the test either way);
- foreign clinic: never 2xx; 404 when the role is allowed (the record's existence never leaks);
  collections (no record in the path) may answer 2xx but must hold nothing of the other clinic;
- break-glass is cross-clinic by design: 2xx on a foreign patient exactly when allowed, and
  never 2xx on one's own clinic's patient.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from medflow.access.permissions import ROLES, allows
from medflow.access.tokens import create_token
from medflow.context import Context
from medflow.eventstore import store
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db

ITEM, COLLECTION, CROSS_CLINIC, PUBLIC = "item", "collection", "cross_clinic", "public"

RX = {"drug_code": "197361", "drug_name": "Amlodipine 5 MG Oral Tablet", "dose": "5 mg",
      "route": "oral", "frequency": "once daily"}
TEST = {"loinc_code": "2823-3", "display": "Potassium"}


def _hour(days: float, hour: int) -> str:
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=days)
    return start.replace(hour=hour).isoformat()


@dataclass
class Case:
    """How to call one route: its permission, body, query and path parameters."""

    permission: str | None
    body: Callable[[dict], dict] | None = None
    query: Callable[[dict], dict] | None = None
    params: dict[str, str] = field(default_factory=dict)  # path parameter -> world key
    if_match: bool = False  # send the target's current version (the first path parameter's)
    kind: str = ITEM


# Path parameters name these world records unless a case says otherwise.
PARAMS = {
    "patient_id": "patient", "encounter_id": "encounter", "diagnosis_id": "diagnosis",
    "prescription_id": "prescription", "note_id": "draft_note", "order_id": "order",
    "result_id": "result", "appointment_id": "appointment", "provider_id": "doctor_id",
    "task_id": "task", "alert_id": "alert", "allergy_id": "allergy",
}

CASES: dict[str, Case] = {
    # patients
    "POST /api/patients": Case("patients.register", kind=COLLECTION, body=lambda w: {
        "clinic_id": w["clinic"], "mrn": f"NEW-{uuid.uuid4().hex[:6]}", "given_names": "Grace",
        "family_name": "Hopper", "birth_date": "1970-01-01"}),
    "GET /api/patients": Case("patients.search", kind=COLLECTION, query=lambda w: {"q": w["mrn"]}),
    "GET /api/patients/{patient_id}": Case("patients.read"),
    "PATCH /api/patients/{patient_id}": Case("patients.update", if_match=True,
                                             body=lambda w: {"phone": "+1 555 0100"}),
    "POST /api/patients/{patient_id}/archive": Case("patients.archive", body=lambda w: {}),
    "GET /api/patients/{patient_id}/history": Case("patients.history"),
    "POST /api/patients/{patient_id}/forget": Case("patients.forget", body=lambda w: {
        "reason": "matrix test", "override_retention": True}),
    "GET /api/patients/{patient_id}/timeline": Case("timeline.read"),
    "GET /api/patients/{patient_id}/access-log": Case("audit.read_access_log"),
    "POST /api/patients/{patient_id}/break-glass": Case(
        "access.break_glass", kind=CROSS_CLINIC, body=lambda w: {"reason": "emergency"}),
    # clinical
    "POST /api/patients/{patient_id}/encounters": Case("clinical.start_encounter", body=lambda w: {}),
    "GET /api/patients/{patient_id}/encounters": Case("clinical.read"),
    "GET /api/encounters/{encounter_id}": Case("clinical.read"),
    "POST /api/encounters/{encounter_id}/end": Case("clinical.end_encounter", if_match=True,
                                                    body=lambda w: {}),
    "POST /api/patients/{patient_id}/vitals": Case("clinical.record_vital_signs",
                                                   body=lambda w: {"heart_rate": 72}),
    "GET /api/patients/{patient_id}/vitals": Case("clinical.read"),
    "POST /api/patients/{patient_id}/diagnoses": Case("clinical.add_diagnosis", body=lambda w: {
        "code_system": "ICD-10", "code": "E11.9", "display": "Type 2 diabetes"}),
    "GET /api/patients/{patient_id}/diagnoses": Case("clinical.read"),
    "GET /api/diagnoses/{diagnosis_id}": Case("clinical.read"),
    "POST /api/diagnoses/{diagnosis_id}/resolve": Case("clinical.resolve_diagnosis", if_match=True,
                                                       body=lambda w: {}),
    "POST /api/diagnoses/{diagnosis_id}/status": Case(
        "clinical.change_diagnosis_status", if_match=True,
        body=lambda w: {"clinical_status": "remission"}),
    "POST /api/patients/{patient_id}/allergies": Case("clinical.record_allergy", body=lambda w: {
        "code_system": "SNOMED CT", "code": "762952008", "display": "Peanut", "category": "food"}),
    "GET /api/patients/{patient_id}/allergies": Case("clinical.read"),
    "GET /api/allergies/{allergy_id}": Case("clinical.read"),
    "POST /api/allergies/{allergy_id}/resolve": Case("clinical.resolve_allergy", if_match=True,
                                                     body=lambda w: {"reason": "outgrown"}),
    "POST /api/allergies/{allergy_id}/refute": Case("clinical.refute_allergy", if_match=True,
                                                    body=lambda w: {"reason": "negative test"}),
    "POST /api/patients/{patient_id}/prescriptions": Case("clinical.prescribe",
                                                          body=lambda w: dict(RX)),
    "GET /api/patients/{patient_id}/prescriptions": Case("clinical.read"),
    "GET /api/prescriptions/{prescription_id}": Case("clinical.read"),
    "POST /api/prescriptions/{prescription_id}/approve": Case("clinical.approve_prescription",
                                                              if_match=True),
    "POST /api/prescriptions/{prescription_id}/discontinue": Case(
        "clinical.discontinue_medication", if_match=True, body=lambda w: {"reason": "side effects"}),
    "POST /api/patients/{patient_id}/notes": Case("clinical.draft_note",
                                                  body=lambda w: {"subjective": "headache"}),
    "GET /api/patients/{patient_id}/notes": Case("clinical.read"),
    "GET /api/notes/{note_id}": Case("clinical.read"),
    "PATCH /api/notes/{note_id}": Case("clinical.revise_note", if_match=True,
                                       body=lambda w: {"plan": "rest"}),
    "POST /api/notes/{note_id}/sign": Case("clinical.sign_note", if_match=True),
    "POST /api/notes/{note_id}/amend": Case("clinical.amend_note", if_match=True,
                                            params={"note_id": "signed_note"},
                                            body=lambda w: {"amendment": "typo", "reason": "fix"}),
    "GET /api/patients/{patient_id}/chart": Case("clinical.read"),
    # labs
    "POST /api/patients/{patient_id}/lab-orders": Case("labs.place_order",
                                                       body=lambda w: {"tests": [dict(TEST)]}),
    "GET /api/patients/{patient_id}/lab-orders": Case("labs.read"),
    "GET /api/patients/{patient_id}/lab-results": Case("labs.read"),
    "GET /api/lab-orders/{order_id}": Case("labs.read"),
    "POST /api/lab-orders/{order_id}/results": Case("labs.record_result", body=lambda w: {
        **TEST, "value": 4.2, "unit": "mmol/L", "effective_at": _hour(-1, 8)}),
    "POST /api/lab-orders/{order_id}/results/{result_id}/correct": Case(
        "labs.correct_result", if_match=True, body=lambda w: {"value": 4.3, "reason": "typo"}),
    "POST /api/lab-orders/{order_id}/results/{result_id}/cancel": Case(
        "labs.cancel_result", if_match=True, body=lambda w: {"reason": "wrong sample"}),
    "POST /api/lab-orders/{order_id}/cancel": Case("labs.cancel_order", if_match=True,
                                                   params={"order_id": "open_order"},
                                                   body=lambda w: {"reason": "not needed"}),
    # scheduling
    "POST /api/appointments": Case("scheduling.schedule", kind=COLLECTION, body=lambda w: {
        "patient_id": w["patient"], "provider_id": w["doctor_id"], "starts_at": _hour(2, 16),
        "duration_minutes": 30}),
    "GET /api/appointments/{appointment_id}": Case("scheduling.read"),
    "POST /api/appointments/{appointment_id}/reschedule": Case(
        "scheduling.reschedule", if_match=True,
        body=lambda w: {"starts_at": _hour(2, 17), "duration_minutes": 30}),
    "POST /api/appointments/{appointment_id}/cancel": Case("scheduling.cancel", if_match=True,
                                                           body=lambda w: {"reason": "ill"}),
    "POST /api/appointments/{appointment_id}/check-in": Case("scheduling.check_in", if_match=True,
                                                             body=lambda w: {}),
    "POST /api/appointments/{appointment_id}/complete": Case(
        "scheduling.complete", if_match=True, params={"appointment_id": "checked_in"},
        body=lambda w: {}),
    "POST /api/appointments/{appointment_id}/no-show": Case(
        "scheduling.mark_no_show", if_match=True, params={"appointment_id": "past_appointment"}),
    "GET /api/patients/{patient_id}/appointments": Case("scheduling.read"),
    "GET /api/providers/{provider_id}/day": Case("scheduling.read", kind=COLLECTION,
                                                 query=lambda w: {"date": _hour(2, 12)[:10]}),
    # work
    "POST /api/tasks": Case("work.assign_task", kind=COLLECTION, body=lambda w: {
        "assignee_id": w["assignee_id"], "title": "Call back", "clinic_id": w["clinic"]}),
    "GET /api/tasks": Case("work.read_tasks", kind=COLLECTION,
                           query=lambda w: {"assignee": w["assignee_id"]}),
    "GET /api/tasks/{task_id}": Case("work.read_tasks"),
    "POST /api/tasks/{task_id}/complete": Case("work.complete_task", if_match=True,
                                               body=lambda w: {}),
    "POST /api/tasks/{task_id}/reassign": Case("work.reassign_task", if_match=True,
                                               body=lambda w: {"assignee_id": w["nurse_id"]}),
    "GET /api/alerts": Case("work.read_alerts", kind=COLLECTION),
    "POST /api/alerts/{alert_id}/acknowledge": Case("work.acknowledge_alert", if_match=True,
                                                    body=lambda w: {}),
    # authentication (no session needed; tested in tests/e2e/test_authz_login.py)
    "POST /api/auth/login": Case(None, kind=PUBLIC),
    "POST /api/auth/logout": Case(None, kind=PUBLIC),
}


def api_routes() -> list[tuple[str, str]]:
    """Return (METHOD, path) of every operation of the API, from its OpenAPI description."""
    from medflow.api import api

    schema = api.get_openapi_schema(path_prefix="/api/")
    return [(method.upper(), path) for path, ops in schema["paths"].items() for method in ops]


def test_every_route_has_a_case():
    """A new endpoint must be added to CASES: that is what puts it under the matrix."""
    missing = [f"{m} {p}" for m, p in api_routes() if f"{m} {p}" not in CASES]
    assert not missing, (
        "routes not covered by the authorisation matrix; add each to CASES in"
        f" tests/e2e/test_authz_matrix.py with a minimal valid body and its permission: {missing}"
    )
    stale = set(CASES) - {f"{m} {p}" for m, p in api_routes()}
    assert not stale, f"CASES names routes the API no longer has: {sorted(stale)}"


def test_every_case_names_a_known_permission():
    from medflow.access.permissions import PERMISSIONS

    unknown = {c.permission for c in CASES.values() if c.permission} - set(PERMISSIONS)
    assert not unknown


# The world ----------------------------------------------------------------------------------------

def _ctx(user, role: str, clinic) -> Context:
    return Context(user_id=user.pk, username=user.username, role=role,
                   clinic_ids=frozenset({clinic.id}))


def build_world(system, clinic, tag: str) -> dict[str, Any]:
    """One patient and one of everything, in `clinic`, through the services."""
    from medflow.clinical import services as clinical
    from medflow.labs import services as labs
    from medflow.patients.services import register_patient
    from medflow.scheduling import services as scheduling
    from medflow.work import services as work

    users = {role: make_staff(system, clinic, f"{tag}_{role}", role) for role in ROLES}
    doctor2 = make_staff(system, clinic, f"{tag}_doctor2", "doctor")
    assignee = make_staff(system, clinic, f"{tag}_clerk", "receptionist")
    doc, nurse = _ctx(users["doctor"], "doctor", clinic), _ctx(users["nurse"], "nurse", clinic)
    mrn = f"{tag.upper()}-1"
    patient = register_patient(doc, clinic_id=clinic.id, mrn=mrn, given_names="Ada",
                               family_name=f"Lovelace{tag}", birth_date="1980-12-10",
                               sex="female").aggregate_id
    w: dict[str, Any] = {
        "clinic": str(clinic.id), "mrn": mrn, "patient": patient, "users": users,
        "doctor_id": users["doctor"].pk, "nurse_id": users["nurse"].pk, "assignee_id": assignee.pk,
    }
    w["encounter"] = clinical.start_encounter(doc, patient_id=patient, provider_id=None).aggregate_id
    w["diagnosis"] = clinical.add_diagnosis(doc, patient_id=patient, code_system="ICD-10",
                                            code="I10", display="Hypertension").aggregate_id
    w["allergy"] = clinical.record_allergy(nurse, patient_id=patient, code_system="RxNorm",
                                           code="7980", display="Penicillin G",
                                           category="medication").aggregate_id
    w["prescription"] = clinical.prescribe_medication(
        _ctx(doctor2, "doctor", clinic), patient_id=patient, needs_approval=True, **RX
    ).aggregate_id
    w["draft_note"] = clinical.draft_note(nurse, patient_id=patient, subjective="s").aggregate_id
    signed = clinical.draft_note(doc, patient_id=patient, subjective="s").aggregate_id
    clinical.sign_note(doc, signed)
    w["signed_note"] = signed
    w["order"] = labs.place_lab_order(doc, patient, tests=[dict(TEST)]).aggregate_id
    w["result"] = uuid.uuid4()
    labs.record_lab_result(nurse, w["order"], result_id=w["result"], **TEST, value=4.1,
                           unit="mmol/L", effective_at=_hour(-1, 7))
    w["open_order"] = labs.place_lab_order(doc, patient, tests=[dict(TEST)]).aggregate_id
    book = {"patient_id": patient, "provider_id": users["doctor"].pk, "duration_minutes": 30}
    w["appointment"] = scheduling.schedule_appointment(doc, starts_at=_hour(2, 9),
                                                       **book).aggregate_id
    w["checked_in"] = scheduling.schedule_appointment(doc, starts_at=_hour(2, 10),
                                                      **book).aggregate_id
    scheduling.check_in_appointment(doc, w["checked_in"])
    past = timezone.now() - timedelta(hours=3)
    w["past_appointment"] = scheduling.schedule_appointment(
        doc, starts_at=past.replace(microsecond=0), now=past - timedelta(minutes=5), **book
    ).aggregate_id
    w["task"] = work.assign_task(doc, assignee_id=assignee.pk, title="Chase results").aggregate_id
    w["alert"] = work.raise_alert(doc, severity="warning", message="Check potassium",
                                  patient_id=patient).aggregate_id
    return w


def _ids(w: dict[str, Any]) -> list[str]:
    keys = ("patient", "encounter", "diagnosis", "allergy", "prescription", "draft_note",
            "signed_note", "order", "result", "open_order", "appointment", "checked_in",
            "past_appointment", "task", "alert")
    return [str(w[k]) for k in keys] + [w["mrn"]]


# The calls ----------------------------------------------------------------------------------------

def _call(client: Client, method: str, path: str, case: Case, target: dict, body_world: dict):
    """Call one route with `target`'s records in the path and `body_world`'s in the body/query."""
    values = {}
    for name in re.findall(r"{(\w+)}", path):
        values[name] = target[case.params.get(name, PARAMS[name])]
    url = path.format(**values)
    headers = {}
    if case.if_match:
        first = re.findall(r"{(\w+)}", path)[0]
        headers["HTTP_IF_MATCH"] = f'"{store.current_version(values[first])}"'
    query = case.query(body_world) if case.query else {}
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    body = case.body(body_world) if case.body else None
    kwargs = {"content_type": "application/json"} if body is not None else {}
    data = orjson.dumps(body) if body is not None else b""
    with transaction.atomic():
        response = client.generic(method, url, data, **kwargs, **headers)
        transaction.set_rollback(True)
    return response


def _check(case: Case, role: str, where: str, response, foreign_ids: list[str]) -> str | None:
    """Return what is wrong with the answer, or None."""
    status = response.status_code
    allowed = allows(role, case.permission)
    ok = 200 <= status < 300
    if case.kind == CROSS_CLINIC:
        if where == "own":
            return None if not ok else f"{status}: break-glass on one's own clinic must not succeed"
        expected = "2xx" if allowed else "403"
        good = ok if allowed else status == 403
        return None if good else f"{status}, expected {expected}"
    if where == "own":
        if allowed:
            return None if ok else f"{status}, expected 2xx (role allowed)"
        return None if status == 403 else f"{status}, expected 403 (role not allowed)"
    if case.kind == COLLECTION and ok:
        text = response.content.decode()
        leaked = [i for i in foreign_ids if i in text]
        return f"{status} and leaks the other clinic's {leaked}" if leaked else None
    if ok:
        return f"{status}: the other clinic's record must never be reachable"
    if allowed and status != 404:
        return f"{status}, expected 404 (another clinic's record)"
    if not allowed and status not in (403, 404):
        return f"{status}, expected 403 or 404"
    return None


def test_authorisation_matrix(system, clinic, other_clinic):
    own, foreign = build_world(system, clinic, "own"), build_world(system, other_clinic, "far")
    clients = {role: Client(HTTP_AUTHORIZATION=f"Bearer {create_token(own['users'][role])[1]}")
               for role in ROLES}
    routes = [(m, p) for m, p in api_routes() if CASES[f"{m} {p}"].kind != PUBLIC]
    failures, calls = [], 0
    for method, path in routes:
        case = CASES[f"{method} {path}"]
        for role in ROLES:
            for where, target in (("own", own), ("foreign", foreign)):
                # Collections name the other clinic's records in their body or query instead.
                body_world = foreign if (where == "foreign" and case.kind == COLLECTION) else own
                if case.kind == COLLECTION and where == "foreign" and "{" in path:
                    body_world = own
                response = _call(clients[role], method, path, case, target, body_world)
                calls += 1
                problem = _check(case, role, where, response, _ids(foreign))
                if problem:
                    failures.append(f"{method} {path} as {role} ({where}): {problem}"
                                    f" {response.content[:200]!r}")
    assert calls == len(routes) * len(ROLES) * 2
    assert not failures, "\n".join(failures)
