"""Convert the first N patients of a Synthea CSV export into the demo sample shipped in the repo.

Usage: python tools/make_demo_sample.py ../shared/data/synthea-ca/csv 25

Keeps each patient's demographics and their last encounters with the vital signs, conditions,
medications and numeric lab results recorded in them (plus conditions and medications still
active), and all their allergies. Synthea appends digits to names to keep them unique
("Maude482"); the sample drops them. Synthea gives no reference ranges: typical adult ranges for
common tests are added from REFERENCE below so that the demo shows abnormal flags. Nor does its
CSV give an allergy's criticality: an allergy with a severe past reaction is called high
criticality, any other low (see `criticality`).
"""

import csv
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src/medflow/demo/data/sample.json"
SEX = {"F": "female", "M": "male"}
ENCOUNTERS_PER_PATIENT = 6
LABS_PER_PATIENT = 30
VITALS = {  # LOINC -> field of VitalSignsRecorded
    "8480-6": "systolic", "8462-4": "diastolic", "8867-4": "heart_rate",
    "9279-1": "respiratory_rate", "8310-5": "temperature_c", "59408-5": "spo2",
    "2708-6": "spo2", "29463-7": "weight_kg", "8302-2": "height_cm",
}
REFERENCE = {  # LOINC -> typical adult reference range (low, high)
    "2339-0": (70, 99), "2345-7": (70, 99), "2823-3": (3.5, 5.1), "2951-2": (136, 145),
    "38483-4": (0.7, 1.3), "2160-0": (0.7, 1.3), "4548-4": (4.0, 5.6), "2093-3": (0, 200),
    "18262-6": (0, 100), "2085-9": (40, 100), "2571-8": (0, 150), "6299-2": (7, 20),
    "3094-0": (7, 20), "2075-0": (98, 107), "2028-9": (22, 29), "17861-6": (8.5, 10.5),
    "718-7": (12, 17.5), "6690-2": (4.5, 11), "777-3": (150, 450), "33914-3": (60, 200),
}


def clean(name: str) -> str:
    return re.sub(r"\d+", "", name).strip()


def rows(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / f"{name}.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def by_patient(items: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    grouped = defaultdict(list)
    for item in items:
        grouped[item["PATIENT"]].append(item)
    return grouped


def criticality(allergy: dict[str, str]) -> str:
    """Return FHIR's criticality for a Synthea allergy: high after a severe reaction, else low."""
    severe = any(allergy[f"SEVERITY{n}"] == "SEVERE" for n in (1, 2))
    return "high" if severe else "low"


def allergy(a: dict[str, str]) -> dict:
    """Return one Synthea allergy with its (up to two) reactions."""
    reactions = [
        {"code": a[f"REACTION{n}"] or None, "manifestation": a[f"DESCRIPTION{n}"],
         "severity": a[f"SEVERITY{n}"].lower() or None}
        for n in (1, 2) if a[f"DESCRIPTION{n}"]
    ]
    return {"encounter": a["ENCOUNTER"], "code_system": a["SYSTEM"], "code": a["CODE"],
            "display": a["DESCRIPTION"], "type": a["TYPE"], "category": a["CATEGORY"],
            "criticality": criticality(a), "reactions": reactions, "start": a["START"],
            "stop": a["STOP"]}


def convert(folder: Path, count: int) -> list[dict]:
    encounters = by_patient(rows(folder, "encounters"))
    conditions = by_patient(rows(folder, "conditions"))
    medications = by_patient(rows(folder, "medications"))
    observations = by_patient(rows(folder, "observations"))
    allergies = by_patient(rows(folder, "allergies"))
    sample = []
    for n, person in enumerate(rows(folder, "patients")[:count], start=1):
        pid = person["Id"]
        visits = sorted(encounters[pid], key=lambda e: e["START"])[-ENCOUNTERS_PER_PATIENT:]
        kept = {v["Id"] for v in visits}
        vitals: dict[str, dict] = defaultdict(dict)
        labs = []
        for obs in observations[pid]:
            if obs["ENCOUNTER"] not in kept or obs["TYPE"] != "numeric":
                continue
            if obs["CATEGORY"] == "vital-signs" and obs["CODE"] in VITALS:
                vitals[obs["ENCOUNTER"]][VITALS[obs["CODE"]]] = float(obs["VALUE"])
                vitals[obs["ENCOUNTER"]]["measured_at"] = obs["DATE"]
            elif obs["CATEGORY"] == "laboratory":
                low, high = REFERENCE.get(obs["CODE"], (None, None))
                labs.append({"encounter": obs["ENCOUNTER"], "loinc_code": obs["CODE"],
                             "display": obs["DESCRIPTION"][:200], "value": float(obs["VALUE"]),
                             "unit": obs["UNITS"], "effective_at": obs["DATE"],
                             "reference_low": low, "reference_high": high})
        sample.append({
            "source_id": pid, "mrn": f"MRN-{n:05d}",
            "given_names": clean(person["FIRST"]), "family_name": clean(person["LAST"]),
            "birth_date": person["BIRTHDATE"], "sex": SEX.get(person["GENDER"], "unknown"),
            "address": {"lines": [person["ADDRESS"]], "city": person["CITY"],
                        "state": person["STATE"], "postal_code": person["ZIP"], "country": "US"},
            "encounters": [
                {"source_id": v["Id"], "class": v["ENCOUNTERCLASS"], "start": v["START"],
                 "stop": v["STOP"], "description": v["DESCRIPTION"],
                 "reason": v["REASONDESCRIPTION"], "vitals": vitals.get(v["Id"])}
                for v in visits
            ],
            "conditions": [
                {"encounter": c["ENCOUNTER"], "code": c["CODE"], "display": c["DESCRIPTION"],
                 "start": c["START"], "stop": c["STOP"]}
                for c in conditions[pid] if c["ENCOUNTER"] in kept or not c["STOP"]
            ][-10:],
            "medications": [
                {"encounter": m["ENCOUNTER"], "code": m["CODE"], "name": m["DESCRIPTION"],
                 "start": m["START"], "stop": m["STOP"], "reason": m["REASONDESCRIPTION"]}
                for m in medications[pid] if m["ENCOUNTER"] in kept or not m["STOP"]
            ][-8:],
            "labs": labs[-LABS_PER_PATIENT:],
            "allergies": [allergy(a) for a in allergies[pid]],
        })
    return sample


def main() -> None:
    folder, count = Path(sys.argv[1]), int(sys.argv[2])
    sample = convert(folder, count)
    OUT.write_text(json.dumps(sample, indent=1) + "\n")
    print(f"wrote {len(sample)} patients to {OUT}")


if __name__ == "__main__":
    main()
