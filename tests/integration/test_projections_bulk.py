"""The bulk row writer of the projections' batch paths: what it stores equals what the ORM stores."""

from datetime import UTC, date, datetime
from types import SimpleNamespace
from uuid import uuid4

import pytest

from medflow.clinical.models import EncounterRecord, LatestVitalSign
from medflow.projections.bulk import insert_rows, load_rows, update_rows
from medflow.projections.event_counts import count_events
from medflow.projections.models import EventCount
from medflow.timeline.models import TimelineEntry

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
T1 = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


def encounter(**values) -> dict:
    return {"id": uuid4(), "patient_id": uuid4(), "status": "in_progress",
            "state": {"notes": ["a"], "n": 1}, "version": 1, "created_at": T0, "updated_at": T0,
            "clinic_id": uuid4(), "provider_id": 7, "appointment_id": None, "started_at": T0,
            "ended_at": None, **values}


def test_updates_store_what_the_orm_reads_back_whatever_the_value_types():
    first, second, third = encounter(), encounter(), encounter(appointment_id=uuid4())
    insert_rows(EncounterRecord, [first, second, third])
    # Datetimes as objects and as ISO text in one column, NULLs set and cleared, JSON, numbers.
    update_rows(EncounterRecord, [
        {**first, "status": "finished", "ended_at": T1, "version": 2,
         "state": {"notes": ["a", "b"], "closed": True, "x": 1.5}, "provider_id": None},
        {**second, "ended_at": T1.isoformat(), "updated_at": T1.isoformat(),
         "appointment_id": None, "state": [1, "two", None]},
        {**third, "appointment_id": None, "started_at": T1},
    ])
    got = {row["id"]: row for row in load_rows(
        EncounterRecord, "id", [first["id"], second["id"], third["id"]])}
    assert (got[first["id"]]["status"], got[first["id"]]["ended_at"], got[first["id"]]["version"],
            got[first["id"]]["provider_id"]) == ("finished", T1, 2, None)
    assert got[first["id"]]["state"] == {"notes": ["a", "b"], "closed": True, "x": 1.5}
    assert (got[second["id"]]["ended_at"], got[second["id"]]["updated_at"]) == (T1, T1)
    assert got[second["id"]]["state"] == [1, "two", None]
    assert got[second["id"]]["created_at"] == T0  # microseconds kept
    assert (got[third["id"]]["appointment_id"], got[third["id"]]["started_at"]) == (None, T1)


def test_updates_of_some_columns_leave_the_others_and_the_last_write_of_a_key_wins():
    patient = uuid4()
    insert_rows(LatestVitalSign, [
        {"patient_id": patient, "measure": m, "value": 1.0, "unit": "u", "measured_at": T0,
         "event_id": uuid4(), "encounter_id": None} for m in ("pulse", "weight")])
    rows = {row["measure"]: row for row in load_rows(LatestVitalSign, "patient_id", [patient])}
    pulse, weight = rows["pulse"], rows["weight"]
    update_rows(LatestVitalSign, [
        {"id": pulse["id"], "value": 61.25, "measured_at": T1},
        {"id": weight["id"], "value": 80.5, "measured_at": T1},
        {"id": pulse["id"], "value": 72.0, "measured_at": T1},
    ])
    after = {row["measure"]: row for row in load_rows(LatestVitalSign, "patient_id", [patient])}
    assert (after["pulse"]["value"], after["weight"]["value"]) == (72.0, 80.5)
    assert after["pulse"]["unit"] == "u" and after["pulse"]["event_id"] == pulse["event_id"]
    assert LatestVitalSign.objects.get(pk=pulse["id"]).measured_at == T1


def test_loaded_rows_equal_the_orms_values_by_key_column_and_with_a_filter():
    rows = [encounter(), encounter(state={"deep": {"list": [1, 2.5, None]}, "s": "é"}),
            encounter(appointment_id=uuid4(), provider_id=None)]
    insert_rows(EncounterRecord, rows)
    names = [f.attname for f in EncounterRecord._meta.concrete_fields]
    ids = [row["id"] for row in rows] + [uuid4()]  # a key with no row finds nothing
    orm = {row["id"]: row for row in EncounterRecord.objects.filter(id__in=ids).values(*names)}
    assert {row["id"]: row for row in load_rows(EncounterRecord, "id", ids)} == orm
    by_patient = load_rows(EncounterRecord, "patient_id", [rows[1]["patient_id"]])
    assert by_patient == [orm[rows[1]["id"]]]
    assert load_rows(EncounterRecord, "id", ids, status="finished") == []
    assert len(load_rows(EncounterRecord, "id", ids, status="in_progress")) == 3


def test_a_null_filter_matches_null_as_the_orm_does():
    rows = [encounter(), encounter(appointment_id=uuid4())]
    insert_rows(EncounterRecord, rows)
    found = load_rows(EncounterRecord, "id", [row["id"] for row in rows], appointment_id=None)
    assert [row["id"] for row in found] == [rows[0]["id"]]


def test_loaded_times_carry_the_time_zone_the_orm_gives_them():
    row = encounter()
    insert_rows(EncounterRecord, [row])
    (loaded,) = load_rows(EncounterRecord, "id", [row["id"]])
    from_orm = EncounterRecord.objects.get(id=row["id"])
    # psycopg's C parser on PostgreSQL, Django's converters on SQLite: the same aware value.
    assert loaded["created_at"] == from_orm.created_at == T0
    assert loaded["created_at"].tzinfo is from_orm.created_at.tzinfo


def entry(position: int, **values) -> dict:
    return {"position": position, "event_id": uuid4(), "patient_id": uuid4(),
            "aggregate_id": uuid4(), "aggregate_type": "Patient", "event_type": "PatientUpdated",
            "version": 1, "kind": "patient", "summary": "Patient updated", "occurred_at": T0,
            "recorded_at": T0, "username": "u", "role": "nurse", "reason": "", "data": {},
            **values}


def test_inserted_rows_read_back_as_the_orm_would_store_them_whatever_the_value_types():
    # COPY sends values in binary on PostgreSQL: each value is first brought to its column's
    # type, as the server would read it from text.
    event_id, patient_id = uuid4(), uuid4()
    typed = entry(9_000_001, data={"deep": {"list": [1, 2.5, None]}, "s": "é"})
    loose = entry(
        9_000_002, event_id=str(event_id), patient_id=str(patient_id),
        occurred_at=T1.isoformat(),  # ISO text
        recorded_at=T0.replace(tzinfo=None).isoformat(),  # naive text: UTC
        summary=42, data=[1, "two", None],
    )
    insert_rows(TimelineEntry, [typed, loose])
    got = {row.position: row for row in TimelineEntry.objects.filter(
        position__in=[typed["position"], loose["position"]])}
    first, second = got[typed["position"]], got[loose["position"]]
    assert (first.event_id, first.occurred_at, first.data) == (
        typed["event_id"], T0, typed["data"])
    assert (second.event_id, second.patient_id) == (event_id, patient_id)
    assert (second.occurred_at, second.recorded_at) == (T1, T0)
    assert (second.summary, second.data) == ("42", [1, "two", None])
    # Dates as dates, as datetimes and as text; whole rows of one type need no converting.
    insert_rows(EventCount, [
        {"event_type": "A", "day": date(2026, 1, 2), "count": 1},
        {"event_type": "B", "day": T1, "count": 2},
        {"event_type": "C", "day": "2026-03-04", "count": 3},
    ])
    assert dict(EventCount.objects.filter(event_type__in="ABC").values_list(
        "event_type", "day")) == {"A": date(2026, 1, 2), "B": T1.date(), "C": date(2026, 3, 4)}


def test_event_counts_add_a_page_to_the_counts_already_stored():
    day = T0.date()

    def recorded(event_type, when=T0):
        return SimpleNamespace(event_type=event_type, timestamp=when)

    count_events([recorded("X"), recorded("X"), recorded("Y")])
    count_events([recorded("X"), recorded("X", T1), recorded("Z")])
    assert {(c.event_type, c.day, c.count) for c in EventCount.objects.filter(
        event_type__in=["X", "Y", "Z"])} == {
        ("X", day, 3), ("Y", day, 1), ("X", T1.date(), 1), ("Z", day, 1)}
