"""REST endpoints of the clinical context: parse, authorise through the context, call a service
or a query. Creations answer 201; changes to an existing record need If-Match."""

from datetime import datetime
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from ninja import Header, Query, Router, Status

from medflow.access.request_context import context_for
from medflow.api_common import ERRORS, WriteOut, parse_command_id, parse_if_match, require_aware
from medflow.clinical import queries, services
from medflow.clinical.schemas import (
    AllergyIn,
    AllergyListOut,
    AllergyOut,
    AllergyRefuteIn,
    AllergyResolveIn,
    AmendIn,
    ChartOut,
    DiagnosisIn,
    DiagnosisListOut,
    DiagnosisOut,
    DiagnosisResolveIn,
    DiagnosisStatusIn,
    DiscontinueIn,
    EncounterEndIn,
    EncounterIn,
    EncounterListOut,
    EncounterOut,
    NoteIn,
    NoteListOut,
    NoteOut,
    NotePatchIn,
    PrescriptionIn,
    PrescriptionListOut,
    PrescriptionOut,
    VitalSignsIn,
    VitalSignsListOut,
    VitalSignsWriteOut,
)
from medflow.eventstore.commands import CommandResult

router = Router(tags=["clinical"])


def _created(result: CommandResult):
    return Status(201, {"id": result.aggregate_id, "version": result.version})


def _changed(response: HttpResponse, result: CommandResult) -> dict:
    response["ETag"] = f'"{result.version}"'
    return {"id": result.aggregate_id, "version": result.version}


def _list(request: HttpRequest, patient_id: UUID, kind: str, as_of: datetime | None,
          status: list[str] | None, encounter_id: UUID | None = None) -> dict:
    as_of = require_aware(as_of)
    items = queries.list_items(context_for(request), patient_id, kind, as_of=as_of,
                               statuses=status, encounter_id=encounter_id)
    return {"items": [i.out() for i in items], "count": len(items), "as_of": as_of}


def _one(request: HttpRequest, response: HttpResponse, kind: str, aggregate_id: UUID,
         as_of: datetime | None) -> dict:
    item = queries.get_item(context_for(request), kind, aggregate_id, as_of=require_aware(as_of))
    response["ETag"] = f'"{item.version}"'
    return item.out()


# Encounters -------------------------------------------------------------------------------------

@router.post("/patients/{patient_id}/encounters", response={201: WriteOut, **ERRORS},
             summary="Start an encounter")
def start_encounter(request: HttpRequest, patient_id: UUID, payload: EncounterIn,
                    idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.start_encounter(
        context_for(request), patient_id=patient_id, command_id=parse_command_id(idempotency_key),
        **payload.model_dump(),
    )
    return _created(result)


@router.get("/patients/{patient_id}/encounters", response={200: EncounterListOut, **ERRORS},
            summary="A patient's encounters, latest first")
def list_encounters(request: HttpRequest, patient_id: UUID, as_of: datetime | None = None,
                    status: list[str] | None = Query(None)):
    return _list(request, patient_id, "Encounter", as_of, status)


@router.get("/encounters/{encounter_id}", response={200: EncounterOut, **ERRORS},
            summary="Read an encounter")
def read_encounter(request: HttpRequest, response: HttpResponse, encounter_id: UUID,
                   as_of: datetime | None = None):
    return _one(request, response, "Encounter", encounter_id, as_of)


@router.post("/encounters/{encounter_id}/end", response={200: WriteOut, **ERRORS},
             summary="End an encounter")
def end_encounter(request: HttpRequest, response: HttpResponse, encounter_id: UUID,
                  payload: EncounterEndIn, if_match: str | None = Header(None, alias="If-Match"),
                  idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.end_encounter(
        context_for(request), encounter_id, expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key), **payload.model_dump(),
    )
    return _changed(response, result)


# Vital signs ------------------------------------------------------------------------------------

@router.post("/patients/{patient_id}/vitals", response={201: VitalSignsWriteOut, **ERRORS},
             summary="Record vital signs")
def record_vitals(request: HttpRequest, patient_id: UUID, payload: VitalSignsIn,
                  idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.record_vital_signs(
        context_for(request), patient_id=patient_id, command_id=parse_command_id(idempotency_key),
        **payload.model_dump(exclude_none=True),
    )
    event_id = result.events[-1].id if result.events else None
    if event_id is None:  # a retried Idempotency-Key: find what the first attempt recorded
        event_id = queries.event_at(result.aggregate_id, result.version)
    stream = "encounter" if payload.encounter_id else "chart"
    return Status(201, {"id": result.aggregate_id, "version": result.version,
                        "event_id": event_id, "stream": stream})


@router.get("/patients/{patient_id}/vitals", response={200: VitalSignsListOut, **ERRORS},
            summary="A patient's vital signs in the order measured, and the latest of each")
def list_vitals(request: HttpRequest, patient_id: UUID, as_of: datetime | None = None,
                since: datetime | None = None, until: datetime | None = None,
                encounter_id: UUID | None = None, limit: int = Query(100, ge=1, le=1000)):
    ctx = context_for(request)
    as_of = require_aware(as_of)
    rows = queries.vital_signs_series(
        ctx, patient_id, as_of=as_of, since=require_aware(since), until=require_aware(until),
        encounter_id=encounter_id, limit=limit,
    )
    items = [
        {**row.data, "event_id": row.id, "encounter_id": row.encounter_id,
         "measured_at": row.effective_at, "recorded_at": row.recorded_at}
        for row in rows
    ]
    latest = queries.latest_vitals(ctx, patient_id, as_of=as_of)
    return {"items": items, "count": len(items), "latest": latest, "as_of": as_of}


# Diagnoses --------------------------------------------------------------------------------------

@router.post("/patients/{patient_id}/diagnoses", response={201: WriteOut, **ERRORS},
             summary="Add a diagnosis")
def add_diagnosis(request: HttpRequest, patient_id: UUID, payload: DiagnosisIn,
                  idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.add_diagnosis(
        context_for(request), patient_id=patient_id, command_id=parse_command_id(idempotency_key),
        **payload.model_dump(),
    )
    return _created(result)


@router.get("/patients/{patient_id}/diagnoses", response={200: DiagnosisListOut, **ERRORS},
            summary="A patient's problem list, latest first")
def list_diagnoses(request: HttpRequest, patient_id: UUID, as_of: datetime | None = None,
                   status: list[str] | None = Query(None)):
    return _list(request, patient_id, "Diagnosis", as_of, status)


@router.get("/diagnoses/{diagnosis_id}", response={200: DiagnosisOut, **ERRORS},
            summary="Read a diagnosis")
def read_diagnosis(request: HttpRequest, response: HttpResponse, diagnosis_id: UUID,
                   as_of: datetime | None = None):
    return _one(request, response, "Diagnosis", diagnosis_id, as_of)


@router.post("/diagnoses/{diagnosis_id}/resolve", response={200: WriteOut, **ERRORS},
             summary="Resolve a diagnosis")
def resolve_diagnosis(request: HttpRequest, response: HttpResponse, diagnosis_id: UUID,
                      payload: DiagnosisResolveIn, if_match: str | None = Header(None, alias="If-Match"),
                      idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.resolve_diagnosis(
        context_for(request), diagnosis_id, expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key), **payload.model_dump(),
    )
    return _changed(response, result)


@router.post("/diagnoses/{diagnosis_id}/status", response={200: WriteOut, **ERRORS},
             summary="Change a diagnosis's clinical status")
def change_diagnosis_status(request: HttpRequest, response: HttpResponse, diagnosis_id: UUID,
                            payload: DiagnosisStatusIn, if_match: str | None = Header(None, alias="If-Match"),
                            idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.change_diagnosis_status(
        context_for(request), diagnosis_id, expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key), **payload.model_dump(),
    )
    return _changed(response, result)


# Allergies --------------------------------------------------------------------------------------

@router.post("/patients/{patient_id}/allergies", response={201: WriteOut, **ERRORS},
             summary="Record an allergy or intolerance")
def record_allergy(request: HttpRequest, patient_id: UUID, payload: AllergyIn,
                   idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.record_allergy(
        context_for(request), patient_id=patient_id, command_id=parse_command_id(idempotency_key),
        **payload.model_dump(),
    )
    return _created(result)


@router.get("/patients/{patient_id}/allergies", response={200: AllergyListOut, **ERRORS},
            summary="A patient's allergies and intolerances, latest first")
def list_allergies(request: HttpRequest, patient_id: UUID, as_of: datetime | None = None,
                   status: list[str] | None = Query(None)):
    return _list(request, patient_id, "Allergy", as_of, status)


@router.get("/allergies/{allergy_id}", response={200: AllergyOut, **ERRORS},
            summary="Read an allergy")
def read_allergy(request: HttpRequest, response: HttpResponse, allergy_id: UUID,
                 as_of: datetime | None = None):
    return _one(request, response, "Allergy", allergy_id, as_of)


@router.post("/allergies/{allergy_id}/resolve", response={200: WriteOut, **ERRORS},
             summary="Mark an allergy resolved")
def resolve_allergy(request: HttpRequest, response: HttpResponse, allergy_id: UUID,
                    payload: AllergyResolveIn, if_match: str | None = Header(None, alias="If-Match"),
                    idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.resolve_allergy(
        context_for(request), allergy_id, expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key), **payload.model_dump(),
    )
    return _changed(response, result)


@router.post("/allergies/{allergy_id}/refute", response={200: WriteOut, **ERRORS},
             summary="Mark an allergy refuted or entered in error")
def refute_allergy(request: HttpRequest, response: HttpResponse, allergy_id: UUID,
                   payload: AllergyRefuteIn, if_match: str | None = Header(None, alias="If-Match"),
                   idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.refute_allergy(
        context_for(request), allergy_id, expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key), **payload.model_dump(),
    )
    return _changed(response, result)


# Prescriptions ----------------------------------------------------------------------------------

@router.post("/patients/{patient_id}/prescriptions", response={201: WriteOut, **ERRORS},
             summary="Prescribe a medication")
def prescribe(request: HttpRequest, patient_id: UUID, payload: PrescriptionIn,
              idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.prescribe_medication(
        context_for(request), patient_id=patient_id, command_id=parse_command_id(idempotency_key),
        **payload.model_dump(),
    )
    return _created(result)


@router.get("/patients/{patient_id}/prescriptions", response={200: PrescriptionListOut, **ERRORS},
            summary="A patient's prescriptions, latest first")
def list_prescriptions(request: HttpRequest, patient_id: UUID, as_of: datetime | None = None,
                       status: list[str] | None = Query(None)):
    return _list(request, patient_id, "Prescription", as_of, status)


@router.get("/prescriptions/{prescription_id}", response={200: PrescriptionOut, **ERRORS},
            summary="Read a prescription")
def read_prescription(request: HttpRequest, response: HttpResponse, prescription_id: UUID,
                      as_of: datetime | None = None):
    return _one(request, response, "Prescription", prescription_id, as_of)


@router.post("/prescriptions/{prescription_id}/approve", response={200: WriteOut, **ERRORS},
             summary="Approve a pending prescription")
def approve_prescription(request: HttpRequest, response: HttpResponse, prescription_id: UUID,
                         if_match: str | None = Header(None, alias="If-Match"),
                         idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.approve_prescription(
        context_for(request), prescription_id,
        expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key),
    )
    return _changed(response, result)


@router.post("/prescriptions/{prescription_id}/discontinue", response={200: WriteOut, **ERRORS},
             summary="Discontinue a medication")
def discontinue_medication(request: HttpRequest, response: HttpResponse, prescription_id: UUID,
                           payload: DiscontinueIn, if_match: str | None = Header(None, alias="If-Match"),
                           idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.discontinue_medication(
        context_for(request), prescription_id,
        expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key), reason=payload.reason,
    )
    return _changed(response, result)


# Notes ------------------------------------------------------------------------------------------

@router.post("/patients/{patient_id}/notes", response={201: WriteOut, **ERRORS},
             summary="Draft a SOAP note")
def draft_note(request: HttpRequest, patient_id: UUID, payload: NoteIn,
               idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.draft_note(
        context_for(request), patient_id=patient_id, command_id=parse_command_id(idempotency_key),
        **payload.model_dump(),
    )
    return _created(result)


@router.get("/patients/{patient_id}/notes", response={200: NoteListOut, **ERRORS},
            summary="A patient's notes, latest first")
def list_notes(request: HttpRequest, patient_id: UUID, as_of: datetime | None = None,
               status: list[str] | None = Query(None), encounter_id: UUID | None = None):
    return _list(request, patient_id, "ClinicalNote", as_of, status, encounter_id)


@router.get("/notes/{note_id}", response={200: NoteOut, **ERRORS}, summary="Read a note")
def read_note(request: HttpRequest, response: HttpResponse, note_id: UUID,
              as_of: datetime | None = None):
    return _one(request, response, "ClinicalNote", note_id, as_of)


@router.patch("/notes/{note_id}", response={200: WriteOut, **ERRORS}, summary="Revise a draft note")
def revise_note(request: HttpRequest, response: HttpResponse, note_id: UUID, payload: NotePatchIn,
                if_match: str | None = Header(None, alias="If-Match"),
              idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.revise_note(
        context_for(request), note_id, payload.model_dump(exclude_unset=True),
        expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key),
    )
    return _changed(response, result)


@router.post("/notes/{note_id}/sign", response={200: WriteOut, **ERRORS}, summary="Sign a note")
def sign_note(request: HttpRequest, response: HttpResponse, note_id: UUID,
              if_match: str | None = Header(None, alias="If-Match"),
              idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.sign_note(
        context_for(request), note_id, expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key),
    )
    return _changed(response, result)


@router.post("/notes/{note_id}/amend", response={200: WriteOut, **ERRORS},
             summary="Amend a signed note")
def amend_note(request: HttpRequest, response: HttpResponse, note_id: UUID, payload: AmendIn,
               if_match: str | None = Header(None, alias="If-Match"),
              idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
    result = services.amend_note(
        context_for(request), note_id, expected_version=parse_if_match(if_match, required=True),
        command_id=parse_command_id(idempotency_key), **payload.model_dump(),
    )
    return _changed(response, result)


# The chart --------------------------------------------------------------------------------------

@router.get("/patients/{patient_id}/chart", response={200: ChartOut, **ERRORS},
            summary="A patient's chart: problems, allergies, medications, latest vitals, recent notes")
def chart(request: HttpRequest, patient_id: UUID, as_of: datetime | None = None,
          recent_notes: int = Query(5, ge=0, le=50)):
    return queries.patient_chart(context_for(request), patient_id, as_of=require_aware(as_of),
                                 recent_notes=recent_notes)
