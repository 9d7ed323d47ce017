"""Read side of the patients context, always scoped to the caller's clinics."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from django.db import connection
from django.db.models import Q, QuerySet

from medflow.context import Context
from medflow.errors import Gone, InvalidInput, NotFound
from medflow.eventstore import store
from medflow.eventstore.backends import dialect
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


@dataclass(frozen=True)
class PatientRow:
    """The columns of a patient's read-model row that reads of one patient need."""

    id: UUID
    clinic_id: UUID | None
    forgotten: bool
    current_data: dict[str, Any]
    version: int
    last_updated: datetime


def visible_patient(ctx: Context, patient_id: UUID) -> PatientRow:
    """Return the patient's read-model row if the caller may see it (forgotten ones too).

    The row is read by its key with a prepared statement and the caller's scope is checked
    here, as `visible_patients` would filter: every chart and record read starts with this.
    """
    d = dialect()
    with store.fast_cursor() as cursor:
        cursor.execute(
            "SELECT clinic_id, forgotten, current_data, version, last_updated"
            " FROM patient_read_model WHERE id = %s", [d.uuid_in(patient_id)],
        )
        found = cursor.fetchone()
    if found is not None:
        clinic_id, forgotten, data, version, last_updated = found
        clinic_id = d.uuid_out(clinic_id) if clinic_id else None
        visible = (ctx.role == "system" or clinic_id in ctx.clinic_ids
                   or patient_id in ctx.break_glass)
    if found is None or not visible:
        raise NotFound(f"no Patient {patient_id}", field="id")
    ctx.note_read(patient_id, clinic_id)
    return PatientRow(patient_id, clinic_id, bool(forgotten),
                      data if isinstance(data, dict) else orjson.loads(data), version,
                      d.time_out(last_updated))


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
    """Find patients by name, exact MRN or phone number; return the total and a page.

    A name matches when every word of `q` is part of it, case ignored (a word under three
    letters must be a whole word of the name: "li" finds Li, not Lisa or William). On PostgreSQL
    accents are ignored too, and when no name holds every word, names close to them are looked
    for instead: a word of four or five letters then also matches the name words one edit away
    from it (a letter dropped, added or changed) or with two neighbouring letters swapped, a
    longer word those two edits away (a swap counts two), the first two letters not both wrong:
    "smtih" finds Smith, "lovlace" Lovelace. A term with a digit in it is no name: it matches
    the exact MRN or, without letters, the phone number's digits. Results are ordered by family
    name, given names, id; the total counts every match.
    """
    rows = visible_patients(ctx).filter(forgotten=False)
    term = q.strip()
    if term and connection.vendor == "postgresql":
        # Typos are looked for only when nothing matches as typed: the close words of a common
        # name would add thousands of rows to sort. (Both in one statement costs every search
        # that matches as typed 1 ms more, to save a typo search about as much.)
        total, page = _fuzzy_page(_fuzzy_filter(rows, term), limit, offset)
        if total == 0 and _typo_words(term):
            total, page = _fuzzy_page(_fuzzy_filter(rows, term, typos=True), limit, offset)
    else:
        if term:
            rows = rows.filter(_substring_match(term))
        rows = rows.order_by(*ORDER)
        total, page = rows.count(), list(rows[offset:offset + limit])
    for row in page:
        ctx.note_read(row.id, row.clinic_id)
    return total, page


ORDER = ("family_name", "given_names", "id")


def _words(term: str) -> list[tuple[str, int]]:
    """Return the lower-cased words of a name search, each with its count of letters/digits."""
    return [(word, sum(ch.isalnum() for ch in word)) for word in term.lower().split()]


def _substring_match(term: str) -> Q:
    """SQLite fallback: the exact MRN, or every word part of the name (under three letters: one
    of its words); no accent or typo tolerance, no phone."""
    name_match = Q()
    for word, letters in _words(term):
        if letters >= 3:
            name_match &= Q(search_name__contains=word)
        else:
            name_match &= (Q(search_name=word) | Q(search_name__startswith=f"{word} ")
                           | Q(search_name__contains=f" {word} ")
                           | Q(search_name__endswith=f" {word}"))
    if any(ch.isdigit() for ch in term):
        return Q(mrn=term)
    return Q(mrn=term) | name_match


def _like_escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# A three-letter word one edit away from most short names ("ali": Al, Ali, Alan, Lia ...) would
# find thousands of patients: typos are looked for in longer words only.
TYPO_MIN_LETTERS = 4


def _typo_words(term: str) -> bool:
    """Tell whether `term` is a name with a word long enough to be matched loosely."""
    return not any(ch.isdigit() for ch in term) and any(
        letters >= TYPO_MIN_LETTERS for _word, letters in _words(term))


# The LIKE patterns of the name words close to a typed word (its one parameter): within one
# edit of a word of four or five letters, or that word with two neighbouring letters swapped;
# within two edits of a longer word. Candidates are the words whose first or second letter is
# one of the typed word's first two, so a typo anywhere but in both of those letters (a letter
# added, dropped, changed or swapped at the start included) is looked for: one index scan per
# side of the UNION (an OR of the two would read every word of the right length), and the edit
# distance decides over those: about 3 ms a word against 60,000 words. (%% is a literal %: the
# statement goes through the driver's formatting.)
CLOSE_PATTERNS_SQL = (
    "ARRAY(SELECT '%%' || replace(replace(replace(n.word, '\\', '\\\\'), '%%', '\\%%'),"
    " '_', '\\_') || '%%'"
    " FROM (SELECT w AS word, CASE WHEN length(w) > 5 THEN 2 ELSE 1 END AS edits,"
    " ARRAY[left(w, 1), substr(w, 2, 1)] AS starts,"
    " ARRAY(SELECT overlay(w PLACING substr(w, i + 1, 1) || substr(w, i, 1) FROM i FOR 2)"
    " FROM generate_series(1, length(w) - 1) AS i) AS swaps"
    " FROM medflow_unaccent(%s) AS w) AS t,"
    " LATERAL (SELECT word FROM patient_name_word WHERE left(word, 1) = ANY (t.starts)"
    " AND length(word) BETWEEN length(t.word) - t.edits AND length(t.word) + t.edits"
    " UNION SELECT word FROM patient_name_word WHERE substr(word, 2, 1) = ANY (t.starts)"
    " AND length(word) BETWEEN length(t.word) - t.edits AND length(t.word) + t.edits) AS n"
    " WHERE n.word <> t.word AND (n.word = ANY (t.swaps)"
    " OR levenshtein_less_equal(n.word, t.word, t.edits) <= t.edits))"
)


def _fuzzy_filter(
    rows: QuerySet[PatientReadModel], term: str, *, typos: bool = False,
) -> QuerySet[PatientReadModel]:
    """PostgreSQL: filter `rows` to the matches of `term`, with `typos` each word of four
    letters or more also matching the name words close to it (see search_patients).

    Names are compared through `search_key`, the unaccented search name that migration 0006
    stores as a generated column, with the trigram GIN index patient_rm_search_key_trgm_idx
    serving every LIKE (the close words' patterns too, as one array); MRN and phone digits have
    btree indexes (0005), so the branches combine with a BitmapOr and no search scans the table.
    """
    sql, params = "mrn = %s", [term]
    if any(ch.isdigit() for ch in term):
        # No name holds a digit: an MRN, or a phone number when there is no letter either.
        digits = "".join(ch for ch in term if ch.isdigit())
        if len(digits) >= 4 and not any(ch.isalpha() for ch in term):
            sql += " OR regexp_replace(current_data->>'phone', '[^0-9]', '', 'g') = %s"
            params.append(digits)
        return rows.extra(where=[f"({sql})"], params=params)
    clauses: list[str] = []
    for word, letters in _words(term):
        escaped = _like_escape(word)
        if letters < 3:
            # LIKE '%li%' has no trigram to look up (the whole index would be read, 12% of the
            # names hold "li"); a whole word has three, padded as the index stores them.
            clauses.append("(" + " OR ".join(["search_key LIKE medflow_unaccent(%s)"] * 3) + ")")
            params += [f"{escaped} %", f"% {escaped} %", f"% {escaped}"]
        elif typos and letters >= TYPO_MIN_LETTERS:
            clauses.append("(search_key LIKE medflow_unaccent(%s)"
                           f" OR search_key LIKE ANY ({CLOSE_PATTERNS_SQL}))")
            params += [f"%{escaped}%", word]
        else:
            clauses.append("(search_key LIKE medflow_unaccent(%s))")
            params.append(f"%{escaped}%")
    sql += " OR (" + " AND ".join(clauses) + ")"
    return rows.extra(where=[f"({sql})"], params=params)


def _fuzzy_page(
    rows: QuerySet[PatientReadModel], limit: int, offset: int
) -> tuple[int, list[PatientReadModel]]:
    """PostgreSQL: count the matches and read one page of them, in one statement.

    The matches are gathered first (a MATERIALIZED CTE, through the indexes), then counted and
    sorted. Left to itself the planner pages by walking the (clinic_id, family_name) index in
    name order, testing every row until it has a page: 700 ms for a common name late in the
    alphabet, where gathering its 2,000 matches and sorting them takes a few milliseconds.
    """
    hits, params = rows.values_list(*ORDER).query.sql_with_params()
    order = ", ".join(ORDER)
    page = list(PatientReadModel.objects.raw(
        f"WITH hits AS MATERIALIZED ({hits}),"
        f" page AS (SELECT id FROM hits ORDER BY {order} LIMIT %s OFFSET %s)"
        " SELECT patient.*, (SELECT count(*) FROM hits) AS search_total"
        " FROM page JOIN patient_read_model patient USING (id)"
        f" ORDER BY {', '.join(f'patient.{column}' for column in ORDER)}",
        [*params, limit, offset],
    ))
    if page:
        return page[0].search_total, page
    if offset == 0:
        return 0, []
    with connection.cursor() as cursor:  # past the last page: the total alone
        cursor.execute(f"SELECT count(*) FROM ({hits}) AS hits", params)
        return cursor.fetchone()[0], []


def patient_history(ctx: Context, patient_id: UUID) -> list[store.RecordedEvent]:
    """Return every event of a patient's stream, oldest first (redacted once forgotten)."""
    visible_patient(ctx, patient_id)
    return store.load(patient_id)
