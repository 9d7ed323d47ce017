"""The clinical domain: encounters, vital signs, diagnoses, allergies, prescriptions, SOAP notes.

Plain Python and pydantic, no Django. One module per aggregate, with its events beside it.
"""

from medflow.clinical.domain.allergy import (
    Allergy,
    AllergyCategory,
    AllergyRecorded,
    AllergyRefuted,
    AllergyResolved,
    AllergyStatus,
    Criticality,
)
from medflow.clinical.domain.diagnosis import (
    ClinicalStatus,
    CodeSystem,
    Diagnosis,
    DiagnosisAdded,
    DiagnosisResolved,
    DiagnosisStatusChanged,
)
from medflow.clinical.domain.encounter import (
    Disposition,
    Encounter,
    EncounterEnded,
    EncounterKind,
    EncounterStarted,
    EncounterStatus,
)
from medflow.clinical.domain.note import (
    ClinicalNote,
    NoteAmended,
    NoteDrafted,
    NoteRevised,
    NoteSigned,
    NoteStatus,
)
from medflow.clinical.domain.prescription import (
    MedicationDiscontinued,
    MedicationPrescribed,
    MedicationStatus,
    Prescription,
    PrescriptionApproved,
    Route,
)
from medflow.clinical.domain.vitals import MEASURES, Chart, VitalSignsRecorded, chart_id

EVENTS = (
    EncounterStarted, EncounterEnded, VitalSignsRecorded,
    DiagnosisAdded, DiagnosisStatusChanged, DiagnosisResolved,
    MedicationPrescribed, PrescriptionApproved, MedicationDiscontinued,
    NoteDrafted, NoteRevised, NoteSigned, NoteAmended,
    AllergyRecorded, AllergyResolved, AllergyRefuted,
)
"""Every event of the clinical context."""

AGGREGATES = {cls.aggregate_type: cls for cls in (Encounter, Chart, Diagnosis, Prescription, ClinicalNote,
                                                      Allergy)}
"""The clinical aggregates by type name."""

__all__ = [
    "AGGREGATES", "EVENTS", "MEASURES", "Allergy", "AllergyCategory", "AllergyRecorded",
    "AllergyRefuted", "AllergyResolved", "AllergyStatus", "Chart", "ClinicalNote", "ClinicalStatus",
    "CodeSystem", "Criticality",
    "Diagnosis", "DiagnosisAdded", "DiagnosisResolved", "DiagnosisStatusChanged", "Disposition",
    "Encounter", "EncounterEnded", "EncounterKind", "EncounterStarted", "EncounterStatus",
    "MedicationDiscontinued", "MedicationPrescribed", "MedicationStatus", "NoteAmended",
    "NoteDrafted", "NoteRevised", "NoteSigned", "NoteStatus", "Prescription",
    "PrescriptionApproved", "Route", "VitalSignsRecorded", "chart_id",
]
