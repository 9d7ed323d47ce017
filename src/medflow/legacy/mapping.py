"""How legacy rows and values become MedFlow ids and command arguments (no database here)."""

import functools
import re
import uuid
from datetime import date, datetime
from typing import Any

NAMESPACE = uuid.UUID("9a3e4b0c-6f2d-4e8a-b7c1-2d5f8e9a0b13")
DEFAULT_CLINIC = "__no_organization__"
IMPORT_USERNAME = "legacy-import"

ENCOUNTER_KINDS = {
    "wellness": "ambulatory", "outpatient": "ambulatory", "ambulatory": "ambulatory",
    "urgentcare": "walk_in", "emergency": "emergency", "inpatient": "inpatient",
    "snf": "inpatient", "hospice": "home", "home": "home", "virtual": "virtual", "walk_in": "walk_in",
}
ROUTE_WORDS = (("inhal", "inhaled"), ("inject", "im"), ("topical", "topical"), ("nasal", "nasal"),
               ("transdermal", "transdermal"), ("ophthalmic", "ophthalmic"), ("vaginal", "vaginal"),
               ("rectal", "rectal"), ("sublingual", "sublingual"))
DOSE = re.compile(r"\d[\d.]*\s*(MG|MCG|ML|UNT|%)\S*", re.I)
SEX = {"m": "male", "male": "male", "f": "female", "female": "female", "o": "other",
       "other": "other"}
# Measures the domain takes as whole numbers (Synthea averages some of them to fractions).
WHOLE_MEASURES = ("systolic", "diastolic", "heart_rate", "respiratory_rate", "spo2")
MEASURES = ("systolic", "diastolic", "heart_rate", "respiratory_rate", "temperature_c", "spo2",
            "weight_kg", "height_cm")


@functools.lru_cache(maxsize=1 << 16)
def aggregate_id(table: str, row_id: str) -> uuid.UUID:
    """Return the id of the aggregate a legacy row becomes (the same on every run)."""
    return uuid.uuid5(NAMESPACE, f"{table}:{row_id}")


def lab_order_id(patient_id: str, encounter_id: str | None, effective: datetime) -> uuid.UUID:
    """Return the id of the lab order the results of one encounter (or one day) hang on."""
    key = encounter_id or f"{patient_id}:{effective.date().isoformat()}"
    return uuid.uuid5(NAMESPACE, f"legacy_lab_orders:{key}")


def provider_username(provider_id: str) -> str:
    return f"legacy-{provider_id}"[:150]


def sex(gender: str) -> str:
    return SEX.get((gender or "").strip().lower(), "unknown")


def patient_fields(row: Any) -> dict[str, Any]:
    """Return register_patient's fields for a legacy patient row."""
    fields: dict[str, Any] = {
        "mrn": row.mrn, "given_names": row.first_name, "family_name": row.last_name,
        "birth_date": row.birth_date, "sex": sex(row.gender),
    }
    if any((row.address, row.city, row.state, row.zip)):
        fields["address"] = {"lines": [row.address] if row.address else [], "city": row.city,
                             "state": row.state, "postal_code": row.zip}
    if row.phone:
        fields["phone"] = row.phone
    return fields


def vital_values(row: Any) -> dict[str, Any]:
    """Return a legacy vital-signs row's values as the domain takes them."""
    values = {}
    for name in MEASURES:
        value = getattr(row, name)
        if value is not None:
            values[name] = round(value) if name in WHOLE_MEASURES else value
    return values


def medication_fields(row: Any) -> dict[str, Any]:
    """Return prescribe_medication's fields for a legacy medication row."""
    name = row.description
    dose = DOSE.search(name)
    return {
        "drug_code": row.code, "drug_name": name[:200],
        "dose": dose.group(0) if dose else "as directed",
        "route": next((r for word, r in ROUTE_WORDS if word in name.lower()), "oral"),
        "frequency": "as directed", "reason": row.reason_description or None,
    }


def lab_fields(row: Any) -> dict[str, Any]:
    """Return record_lab_result's fields for a legacy lab row."""
    fields: dict[str, Any] = {"loinc_code": row.loinc_code, "display": row.display,
                              "effective_at": row.effective_at}
    if row.value is not None:
        fields["value"] = float(row.value)
    else:
        fields["value_text"] = row.value_text
    if row.unit:
        fields["unit"] = row.unit
    return fields


def encounter_reason(row: Any) -> str | None:
    return (row.reason_description or row.description or "")[:500] or None


def as_date(value: date | datetime | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value
