"""Load the demo clinic, user and patients through the application services (idempotent)."""

import csv
import uuid
from importlib import resources

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from medflow.access import services as access
from medflow.access.models import ClinicReadModel, Membership
from medflow.context import system_context
from medflow.patients.models import PatientReadModel
from medflow.patients.services import register_patient

DEMO_CLINIC_ID = uuid.UUID("00000000-0000-4000-8000-00000000d3e0")
DEMO_NAMESPACE = uuid.UUID("5b1c6d2e-9f0a-4d4b-8c1e-6a7f3e2d1c0b")


def demo_rows() -> list[dict[str, str]]:
    """Return the shipped sample patients (converted from Synthea, see tools/)."""
    text = resources.files("medflow.demo").joinpath("data/patients.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


def ensure_demo_user(username: str = "demo", password: str = "demo"):
    """Create the development-only demo user; refuse outside DEBUG."""
    if not settings.DEBUG:
        raise RuntimeError("the demo user exists only in development (DEBUG on)")
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_password(password)
        user.first_name, user.last_name = "Demo", "Doctor"
        user.save()
    return user


def load_demo() -> dict[str, int]:
    """Create the demo clinic, user and patients that do not exist yet; return what was added."""
    ctx = system_context("demo data")
    added = {"clinics": 0, "patients": 0}
    with transaction.atomic():
        user = ensure_demo_user()
        if not ClinicReadModel.objects.filter(id=DEMO_CLINIC_ID).exists():
            access.create_clinic(ctx, "Demo Clinic", "demo", clinic_id=DEMO_CLINIC_ID)
            added["clinics"] = 1
        if not Membership.objects.filter(user=user, clinic_id=DEMO_CLINIC_ID).exists():
            access.grant_role(ctx, DEMO_CLINIC_ID, user.username, "doctor")
    existing = set(PatientReadModel.objects.filter(clinic_id=DEMO_CLINIC_ID).values_list("id", flat=True))
    for row in demo_rows():
        patient_id = uuid.uuid5(DEMO_NAMESPACE, row["source_id"])
        if patient_id in existing:
            continue
        register_patient(
            ctx, clinic_id=DEMO_CLINIC_ID, patient_id=patient_id, mrn=row["mrn"],
            given_names=row["given_names"], family_name=row["family_name"],
            birth_date=row["birth_date"], sex=row["sex"],
            address={"lines": [row["line"]], "city": row["city"], "state": row["state"],
                     "postal_code": row["postal_code"], "country": "US"},
        )
        added["patients"] += 1
    return added
