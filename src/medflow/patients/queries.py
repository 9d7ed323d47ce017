"""Read side of the patients context, always scoped to the caller's clinics."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet

from medflow.context import Context
from medflow.errors import Gone, InvalidInput, NotFound
from medflow.eventstore import store
from medflow.eventstore.commands import load_aggregate
from medflow.patients.domain import Patient
from medflow.patients.models import PatientReadModel


def can_see_clinic(ctx: Context, clinic_id: UUID | None) -> bool:
    """Tell whether the caller works in the clinic (MedFlow itself sees every clinic)."""
    return ctx.role == "system" or (clinic_id is not None and clinic_id in ctx.clinic_ids)


def visible_patients(ctx: Context) -> QuerySet[PatientReadModel]:
    """Return the patients of the caller's clinics."""
    rows = PatientReadModel.objects.all()
    if ctx.role == "system":
        return rows
    return rows.filter(Q(clinic_id__in=ctx.clinic_ids) | Q(id__in=ctx.break_glass))


@dataclass(frozen=True)
class PatientView:
    data: dict[str, Any]
    version: int
    last_updated: datetime | None


def visible_patient(ctx: Context, patient_id: UUID) -> PatientReadModel:
    """Return the patient's read-model row if the caller may see it (forgotten ones too)."""
    row = visible_patients(ctx).filter(id=patient_id).first()
    if row is None:
        raise NotFound(f"no Patient {patient_id}", field="id")
    ctx.note_read(row.id, row.clinic_id)
    return row


def get_patient(ctx: Context, patient_id: UUID) -> PatientView:
    """Return a patient's current state from the read model (410 Gone once forgotten)."""
    row = visible_patient(ctx, patient_id)
    if row.forgotten:
        raise Gone(f"Patient {patient_id} was forgotten; only redacted history remains",
                   field="id", code="patient_forgotten")
    return PatientView(row.current_data, row.version, row.last_updated)


def get_patient_at(
    ctx: Context, patient_id: UUID, *, as_of: datetime | None = None, version: int | None = None
) -> PatientView:
    """Return a patient's state as it stood at a time or version, replayed from the log."""
    current = get_patient(ctx, patient_id)
    if version is not None and not 1 <= version <= current.version:
        raise InvalidInput(f"version must be between 1 and {current.version}", field="version")
    patient = load_aggregate(Patient, patient_id, to_version=version, as_of=as_of)
    if not patient.exists:
        raise NotFound(f"Patient {patient_id} did not exist at {as_of}", field="as_of")
    return PatientView(patient.state(), patient.version, None)


def search_patients(
    ctx: Context, q: str = "", *, limit: int = 20, offset: int = 0
) -> tuple[int, list[PatientReadModel]]:
    """Find patients by name (any part, any case) or exact MRN; return the total and a page."""
    rows = visible_patients(ctx).filter(forgotten=False)
    term = q.strip()
    if term and connection.vendor == "postgresql":
        rows = _fuzzy_filter(rows, term)
    elif term:
        # SQLite fallback: every word must match part of the name, or the whole term the MRN.
        name_match = Q()
        for word in term.lower().split():
            name_match &= Q(search_name__contains=word)
        rows = rows.filter(Q(mrn=term) | name_match)
    rows = rows.order_by("family_name", "given_names", "id")
    page = list(rows[offset:offset + limit])
    for row in page:
        ctx.note_read(row.id, row.clinic_id)
    return rows.count(), page


def _like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fuzzy_filter(rows: QuerySet[PatientReadModel], term: str) -> QuerySet[PatientReadModel]:
    """PostgreSQL: every word must be part of the name or close to a word of it (pg_trgm word
    similarity), accents ignored on both sides; or the whole term is the exact MRN, or the
    phone number (digits compared). Served by the trigram GIN index patient_rm_name_trgm_idx."""
    with connection.cursor() as cursor:
        # Session setting read by the <% operator; only this search uses it.
        cursor.execute("SELECT set_config('pg_trgm.word_similarity_threshold', %s, false)",
                       [str(settings.MEDFLOW_SEARCH_SIMILARITY)])
    clauses: list[str] = []
    params: list[str] = []
    for word in term.lower().split():
        clause = "medflow_unaccent(search_name) LIKE medflow_unaccent(%s)"
        params.append(_like_pattern(word))
        # Words under three letters have too few trigrams to be matched loosely.
        if sum(ch.isalnum() for ch in word) >= 3:
            clause += " OR medflow_unaccent(%s) <%% medflow_unaccent(search_name)"
            params.append(word)
        clauses.append(f"({clause})")
    sql = "(mrn = %s OR (" + " AND ".join(clauses) + ")"
    params.insert(0, term)
    digits = "".join(ch for ch in term if ch.isdigit())
    if len(digits) >= 4 and not any(ch.isalpha() for ch in term):
        sql += " OR regexp_replace(current_data->>'phone', '[^0-9]', '', 'g') = %s"
        params.append(digits)
    sql += ")"
    return rows.extra(where=[sql], params=params)


def patient_history(ctx: Context, patient_id: UUID) -> list[store.RecordedEvent]:
    """Return every event of a patient's stream, oldest first (redacted once forgotten)."""
    visible_patient(ctx, patient_id)
    return store.load(patient_id)
