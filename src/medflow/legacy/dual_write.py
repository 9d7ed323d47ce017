"""Dual-write: mirror what is written through MedFlow's services into the legacy tables.

While MEDFLOW_DUAL_WRITE is on (and until cutover), every event a service appends is carried into
the old system's tables in the same transaction, so that the old system stays a usable fallback.
Events that came from the legacy tables themselves (migration, sync) are not mirrored back.
`medflow legacy rollback` uses the same `mirror` to carry back the writes made since cutover.

These are inline handlers, not a projection: they declare no READ_MODELS and are never replayed.
"""

from typing import Any
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent
from medflow.legacy import mapping as mp
from medflow.legacy import models as m
from medflow.legacy.migrate import ENCOUNTER_END


def _legacy_id(table: str, aggregate_id: UUID | None) -> str | None:
    """Return the legacy row id of an aggregate: the one it came from, or the aggregate id."""
    if aggregate_id is None:
        return None
    found = m.MigrationMap.objects.filter(legacy_table=table, aggregate_id=aggregate_id).values_list(
        "legacy_id", flat=True).first()
    return found or str(aggregate_id)


def _clinic_row(clinic_id: UUID) -> str | None:
    row = _legacy_id("legacy_clinics", clinic_id)
    return row if m.Clinic.objects.filter(id=row).exists() else None


def _remember(table: str, legacy_id: str, recorded: RecordedEvent) -> None:
    m.MigrationMap.objects.get_or_create(
        legacy_table=table, legacy_id=legacy_id,
        defaults={"aggregate_id": recorded.aggregate_id, "event_id": recorded.id})


def _insert(model: type, table: str, recorded: RecordedEvent, row_id: str, **values: Any) -> None:
    model.objects.update_or_create(id=row_id, defaults={**values, "updated_at": timezone.now()})
    _remember(table, row_id, recorded)


def _update(model: type, table: str, aggregate_id: UUID, **values: Any) -> None:
    model.objects.filter(id=_legacy_id(table, aggregate_id)).update(**values, updated_at=timezone.now())


def _patient_values(data: dict[str, Any]) -> dict[str, Any]:
    values = {}
    names = {"mrn": "mrn", "given_names": "first_name", "family_name": "last_name",
             "birth_date": "birth_date", "phone": "phone"}
    for field, column in names.items():
        if field in data:
            values[column] = data[field] or ""
    if "sex" in data:
        values["gender"] = {"male": "M", "female": "F"}.get(data["sex"], "")
    if "address" in data:
        address = data["address"] or {}
        values.update(address=(address.get("lines") or [""])[0], city=address.get("city", ""),
                      state=address.get("state", ""), zip=address.get("postal_code", ""))
    return values


def mirror(recorded: RecordedEvent) -> int:
    """Carry one event into the legacy tables; return 1 if it changed them."""
    if recorded.metadata.get("legacy_table"):
        return 0  # it came from there
    event, kind, agg = recorded.event, recorded.event_type, recorded.aggregate_id
    data = event.model_dump(mode="python")
    patient = _legacy_id("legacy_patients", data.get("patient_id"))
    encounter = _legacy_id("legacy_encounters", data.get("encounter_id"))
    when = recorded.metadata.get("effective_time") or recorded.timestamp
    match kind:
        case "ClinicCreated":
            _insert(m.Clinic, "legacy_clinics", recorded, str(agg), name=data["name"])
        case "PatientRegistered":
            _insert(m.Patient, "legacy_patients", recorded, str(agg),
                    clinic_id=_clinic_row(data["clinic_id"]), **_patient_values(data))
        case "PatientUpdated":
            _update(m.Patient, "legacy_patients", agg,
                    **_patient_values(event.model_dump(mode="python", exclude_unset=True)))
        case "EncounterStarted":
            _insert(m.Encounter, "legacy_encounters", recorded, str(agg), patient_id=patient,
                    clinic_id=_clinic_row(data["clinic_id"]), start=data["started_at"],
                    encounter_class=data["kind"], reason_description=data.get("reason") or "")
        case "EncounterEnded":
            _update(m.Encounter, "legacy_encounters", agg, stop=data["ended_at"])
            _remember(ENCOUNTER_END, _legacy_id("legacy_encounters", agg), recorded)
        case "VitalSignsRecorded":
            values = {name: data.get(name) for name in mp.MEASURES}
            _insert(m.VitalSigns, "legacy_vital_signs", recorded, str(recorded.id),
                    patient_id=patient, encounter_id=encounter, measured_at=data["measured_at"],
                    **values)
        case "DiagnosisAdded":
            _insert(m.Diagnosis, "legacy_diagnoses", recorded, str(agg), patient_id=patient,
                    encounter_id=encounter, start=data.get("onset_date") or timezone.localdate(),
                    code=data["code"], description=data["display"])
        case "DiagnosisResolved":
            _update(m.Diagnosis, "legacy_diagnoses", agg, stop=data.get("resolved_on"))
        case "MedicationPrescribed":
            _insert(m.Medication, "legacy_medications", recorded, str(agg), patient_id=patient,
                    encounter_id=encounter, start=when, code=data["drug_code"],
                    description=data["drug_name"], reason_description=data.get("reason") or "")
        case "MedicationDiscontinued":
            _update(m.Medication, "legacy_medications", agg, stop=when)
        case "LabResultRecorded":
            value = data.get("value")
            _insert(m.LabResult, "legacy_lab_results", recorded, str(data["result_id"]),
                    patient_id=patient, encounter_id=_order_encounter(agg),
                    effective_at=data["effective_at"], loinc_code=data["loinc_code"],
                    display=data["display"], value=value,
                    value_text=data.get("value_text") or "", unit=data.get("unit") or "")
        case "NoteDrafted":
            text = "\n\n".join(data.get(s) or "" for s in ("subjective", "objective", "assessment",
                                                            "plan")).strip()
            _insert(m.ClinicalNote, "legacy_clinical_notes", recorded, str(agg), patient_id=patient,
                    encounter_id=encounter, written_at=when, text=text)
        case _:
            return 0
    return 1


def _order_encounter(order_id: UUID) -> str | None:
    from medflow.labs.models import LabOrderReadModel

    encounter = LabOrderReadModel.objects.filter(id=order_id).values_list(
        "encounter_id", flat=True).first()
    return _legacy_id("legacy_encounters", encounter)


@inline.pending_safe(unless=lambda: getattr(settings, "MEDFLOW_DUAL_WRITE", False))
def on_event(recorded: RecordedEvent) -> None:
    """Inline handler: mirror the event while dual-write is on and the tables are not cut over."""
    if not getattr(settings, "MEDFLOW_DUAL_WRITE", False):
        return
    from medflow.legacy.ops import is_cut_over

    if not is_cut_over():
        mirror(recorded)
