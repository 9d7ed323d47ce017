"""Load the demo clinic, users and patients with their clinical histories (encounters, vitals,
diagnoses, allergies, medications, labs, notes), through the application services like any other
client (idempotent: patients already there are skipped).

The sample (data/sample.json) was converted from a Synthea export by tools/make_demo_sample.py.
Historical facts keep their clinical times: each command carries the original time as its
effective time, so the timeline reads in clinical order.
"""

import json
import logging
import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from medflow.access import services as access
from medflow.access.models import ClinicReadModel, Membership
from medflow.clinical import services as clinical
from medflow.context import Context, system_context
from medflow.errors import MedflowError
from medflow.labs import services as labs
from medflow.patients.models import PatientReadModel
from medflow.patients.services import register_patient
from medflow.scheduling.services import schedule_appointment
from medflow.work.services import assign_task

log = logging.getLogger(__name__)

DEMO_CLINIC_ID = uuid.UUID("00000000-0000-4000-8000-00000000d3e0")
DEMO_NAMESPACE = uuid.UUID("5b1c6d2e-9f0a-4d4b-8c1e-6a7f3e2d1c0b")
# username, password, role in the demo clinic (development only).
# A second doctor, because a prescription that needs approval is approved by another doctor.
DEMO_USERS = (("demo", "demo", "doctor"), ("demo-nurse", "demo", "nurse"),
              ("demo-desk", "demo", "receptionist"), ("demo-admin", "demo", "admin"),
              ("demo-doctor", "demo", "doctor"))
ENCOUNTER_KINDS = {
    "wellness": "ambulatory", "outpatient": "ambulatory", "ambulatory": "ambulatory",
    "urgentcare": "walk_in", "emergency": "emergency", "inpatient": "inpatient",
    "snf": "inpatient", "hospice": "home", "home": "home", "virtual": "virtual",
}
ROUTES = (("inhal", "inhaled"), ("inject", "im"), ("topical", "topical"), ("nasal", "nasal"),
          ("transdermal", "transdermal"), ("ophthalmic", "ophthalmic"))


def demo_patients() -> list[dict[str, Any]]:
    """Return the shipped sample patients."""
    text = resources.files("medflow.demo").joinpath("data/sample.json").read_text()
    return json.loads(text)


def _id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(DEMO_NAMESPACE, ":".join(parts))


def _time(text: str) -> datetime:
    value = parse_datetime(text) if "T" in text else datetime.fromisoformat(text + "T12:00:00")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def ensure_demo_users() -> dict[str, Any]:
    """Create the development-only demo users; refuse outside DEBUG."""
    if not settings.DEBUG:
        raise RuntimeError("the demo users exist only in development (DEBUG on)")
    users = {}
    for username, password, _ in DEMO_USERS:
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_password(password)
            user.first_name, user.last_name = "Demo", username.removeprefix("demo-").title()
            user.save()
        users[username] = user
    return users


class _Loader:
    """Enter one sample patient's history; a refused item is logged and skipped."""

    def __init__(self, doctor_ctx: Context, doctor_id: int) -> None:
        self.ctx, self.doctor_id, self.skipped = doctor_ctx, doctor_id, 0

    def at(self, when: datetime) -> Context:
        return replace(self.ctx, effective_time=when)

    def attempt(self, what: str, action) -> Any:
        try:
            return action()
        except MedflowError as exc:
            self.skipped += 1
            log.warning("demo data: skipped %s: %s (%s)", what, exc.message, exc.field)
            return None

    def patient(self, row: dict[str, Any]) -> uuid.UUID:
        patient_id = uuid.uuid5(DEMO_NAMESPACE, row["source_id"])
        register_patient(
            self.ctx, clinic_id=DEMO_CLINIC_ID, patient_id=patient_id, mrn=row["mrn"],
            given_names=row["given_names"], family_name=row["family_name"],
            birth_date=row["birth_date"], sex=row["sex"], address=row["address"],
        )
        for visit in row["encounters"]:
            self.encounter(patient_id, row, visit)
        kept = {v["source_id"] for v in row["encounters"]}
        for condition in row["conditions"]:
            if condition["encounter"] not in kept:
                self.condition(patient_id, condition, None)
        # Samples made before allergies were converted have none.
        for allergy in row.get("allergies", ()):
            if allergy["encounter"] not in kept:
                self.allergy(patient_id, allergy, None)
        last = row["encounters"][-1] if row["encounters"] else None
        if last:
            self.note(patient_id, last)
        return patient_id

    def encounter(self, patient_id: uuid.UUID, row: dict, visit: dict) -> None:
        started = _time(visit["start"])
        encounter_id = _id("encounter", visit["source_id"])
        done = self.attempt("encounter", lambda: clinical.start_encounter(
            self.at(started), patient_id=patient_id, provider_id=self.doctor_id,
            kind=ENCOUNTER_KINDS.get(visit["class"], "ambulatory"), encounter_id=encounter_id,
            reason=(visit["reason"] or visit["description"])[:200], started_at=started))
        if done is None:
            return
        if visit["vitals"]:
            values = dict(visit["vitals"])
            measured = _time(values.pop("measured_at"))
            # The domain takes whole numbers for rates and SpO2; Synthea averages to fractions.
            for rate in ("heart_rate", "respiratory_rate", "spo2"):
                if rate in values:
                    values[rate] = round(values[rate])
            self.attempt("vital signs", lambda: clinical.record_vital_signs(
                self.at(measured), patient_id=patient_id, encounter_id=encounter_id,
                measured_at=measured, **values))
        for condition in row["conditions"]:
            if condition["encounter"] == visit["source_id"]:
                self.condition(patient_id, condition, encounter_id)
        for allergy in row.get("allergies", ()):
            if allergy["encounter"] == visit["source_id"]:
                self.allergy(patient_id, allergy, encounter_id)
        for medication in row["medications"]:
            if medication["encounter"] == visit["source_id"]:
                self.medication(patient_id, medication, encounter_id)
        results = [lab for lab in row["labs"] if lab["encounter"] == visit["source_id"]]
        if results:
            self.labs(patient_id, visit, encounter_id, results)
        ended = _time(visit["stop"]) if visit["stop"] else started
        self.attempt("encounter end", lambda: clinical.end_encounter(
            self.at(ended), encounter_id, ended_at=ended, closing_summary=visit["description"]))

    def condition(self, patient_id, condition: dict, encounter_id) -> None:
        onset = date.fromisoformat(condition["start"][:10])
        diagnosis_id = _id("condition", str(patient_id), condition["code"], condition["start"])
        added = self.attempt("diagnosis", lambda: clinical.add_diagnosis(
            self.at(_time(condition["start"])), patient_id=patient_id, code_system="SNOMED CT",
            code=condition["code"], display=condition["display"][:200], onset_date=onset,
            encounter_id=encounter_id, diagnosis_id=diagnosis_id))
        if added and condition["stop"]:
            self.attempt("resolution", lambda: clinical.resolve_diagnosis(
                self.at(_time(condition["stop"])), diagnosis_id,
                resolved_on=condition["stop"][:10]))

    def allergy(self, patient_id, allergy: dict, encounter_id) -> None:
        allergy_id = _id("allergy", str(patient_id), allergy["code"], allergy["start"])
        recorded = self.attempt("allergy", lambda: clinical.record_allergy(
            self.at(_time(allergy["start"])), patient_id=patient_id,
            code_system=allergy["code_system"], code=allergy["code"],
            display=allergy["display"][:200], type=allergy["type"], category=allergy["category"],
            criticality=allergy["criticality"],
            reactions=[{k: v for k, v in r.items() if v} for r in allergy["reactions"]],
            onset_date=allergy["start"][:10], encounter_id=encounter_id, allergy_id=allergy_id))
        if recorded and allergy["stop"]:
            self.attempt("allergy resolution", lambda: clinical.resolve_allergy(
                self.at(_time(allergy["stop"])), allergy_id, resolved_on=allergy["stop"][:10],
                reason="resolved in the source record"))

    def medication(self, patient_id, medication: dict, encounter_id) -> None:
        name = medication["name"]
        route = next((r for word, r in ROUTES if word in name.lower()), "oral")
        dose = re.search(r"\d[\d.]*\s*(MG|MCG|ML|UNT|%)\S*", name, re.I)
        prescription_id = _id("medication", str(patient_id), medication["code"],
                              medication["start"])
        started = _time(medication["start"])
        done = self.attempt("prescription", lambda: clinical.prescribe_medication(
            self.at(started), patient_id=patient_id, drug_code=medication["code"],
            drug_name=name[:200], dose=dose.group(0) if dose else "as directed", route=route,
            frequency="as directed", reason=medication["reason"] or None,
            encounter_id=encounter_id, prescription_id=prescription_id))
        if done and medication["stop"]:
            self.attempt("discontinuation", lambda: clinical.discontinue_medication(
                self.at(_time(medication["stop"])), prescription_id, reason="course completed"))

    def labs(self, patient_id, visit: dict, encounter_id, results: list[dict]) -> None:
        tests = list({r["loinc_code"]: {"loinc_code": r["loinc_code"], "display": r["display"]}
                      for r in results}.values())
        ordered = _time(visit["start"])
        order = self.attempt("lab order", lambda: labs.place_lab_order(
            self.at(ordered), patient_id, tests=tests, encounter_id=encounter_id,
            order_id=_id("order", visit["source_id"])))
        if order is None:
            return
        for result in results:
            fields = {k: result[k] for k in ("loinc_code", "display", "value", "unit")}
            fields |= {k: result[k] for k in ("reference_low", "reference_high") if result[k]}
            effective = _time(result["effective_at"])
            self.attempt("lab result", lambda f=fields, e=effective: labs.record_lab_result(
                self.at(e), order.aggregate_id, effective_at=e, **f))

    def note(self, patient_id, visit: dict) -> None:
        note = self.attempt("note", lambda: clinical.draft_note(
            self.at(_time(visit["start"])), patient_id=patient_id,
            encounter_id=_id("encounter", visit["source_id"]),
            subjective=f"Seen for {visit['reason'] or visit['description']}.",
            objective="See recorded vital signs and results.",
            assessment=visit["description"], plan="Follow up as needed."))
        if note:
            self.attempt("note signature", lambda: clinical.sign_note(self.ctx, note.aggregate_id))


def load_demo() -> dict[str, int]:
    """Create the demo clinic, users and patients that do not exist yet; return what was added."""
    added = {"clinics": 0, "patients": 0, "skipped": 0}
    with transaction.atomic():
        users = ensure_demo_users()
        if not ClinicReadModel.objects.filter(id=DEMO_CLINIC_ID).exists():
            access.create_clinic(system_context("demo data"), "Demo Clinic", "demo",
                                 clinic_id=DEMO_CLINIC_ID)
            added["clinics"] = 1
        for username, _, role in DEMO_USERS:
            if not Membership.objects.filter(user=users[username], clinic_id=DEMO_CLINIC_ID).exists():
                access.grant_role(system_context("demo data"), DEMO_CLINIC_ID, username, role)
    doctor = users["demo"]
    ctx = Context(user_id=doctor.pk, username=doctor.username, role="doctor",
                  clinic_ids=frozenset({DEMO_CLINIC_ID}), reason="demo data")
    loader = _Loader(ctx, doctor.pk)
    existing = set(PatientReadModel.objects.filter(clinic_id=DEMO_CLINIC_ID).values_list(
        "id", flat=True))
    new_patients = []
    for row in demo_patients():
        if uuid.uuid5(DEMO_NAMESPACE, row["source_id"]) in existing:
            continue
        with transaction.atomic():
            new_patients.append((row, loader.patient(row)))
        added["patients"] += 1
    _schedule_today(loader, new_patients[:6], users)
    added["skipped"] = loader.skipped
    return added


def _schedule_today(loader: _Loader, patients: list, users: dict) -> None:
    """Give the demo doctor a day of appointments from the next hour on, and a task."""
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    for slot, (_row, patient_id) in enumerate(patients):
        loader.attempt("appointment", lambda s=slot, p=patient_id: schedule_appointment(
            loader.ctx, patient_id=p, provider_id=loader.doctor_id,
            starts_at=start + timedelta(minutes=30 * s), duration_minutes=30,
            reason="follow-up visit"))
    if patients:
        row, patient_id = patients[0]
        loader.attempt("task", lambda: assign_task(
            loader.ctx, assignee_id=loader.doctor_id, clinic_id=DEMO_CLINIC_ID,
            patient_id=patient_id, title=f"Review recent labs of {row['given_names']}",
            priority="high"))
