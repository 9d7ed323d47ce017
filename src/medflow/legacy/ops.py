"""The rollback procedure's steps: backup, sync, cutover, archive, rollback.

- backup: dump the legacy tables to a JSON file (before migrating).
- sync: rows written straight into the legacy tables since the last sync become events.
- cutover: the legacy tables become read-only (database triggers refuse every write).
- archive: the legacy tables are written to a file and emptied (after cutover).
- rollback: the legacy tables are the source of truth again: triggers dropped, archived rows
  restored, and every write made through MedFlow since cutover carried back into them.
"""

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from medflow.context import Context
from medflow.errors import MedflowError, RuleViolated
from medflow.eventstore import store
from medflow.legacy import mapping as mp
from medflow.legacy import models as m
from medflow.legacy.migrate import Migrator, Refusal
from medflow.patients.models import PatientReadModel
from medflow.patients.services import update_patient

LAST_SYNC = "last_sync"
CUTOVER_POSITION = "cutover_position"
ARCHIVE_PATH = "archive_path"
READ_ONLY_MESSAGE = "legacy tables are read-only after cutover"


def get_state(key: str) -> str | None:
    return m.State.objects.filter(key=key).values_list("value", flat=True).first()


def set_state(key: str, value: str | None) -> None:
    if value is None:
        m.State.objects.filter(key=key).delete()
    else:
        m.State.objects.update_or_create(key=key, defaults={"value": value})


def is_cut_over() -> bool:
    return get_state(CUTOVER_POSITION) is not None


def _tables() -> list[str]:
    return [model._meta.db_table for model in m.LEGACY_MODELS]


# Backup -----------------------------------------------------------------------------------------

def dump(path: Path | str) -> dict[str, int]:
    """Write every legacy table to a JSON file; return the row counts."""
    data = {"format": "medflow-legacy-dump/1", "created_at": timezone.now().isoformat(),
            "tables": {model._meta.db_table: list(model.objects.order_by("pk").values())
                       for model in m.LEGACY_MODELS}}
    Path(path).write_text(json.dumps(data, cls=DjangoJSONEncoder, indent=1))
    return {name: len(rows) for name, rows in data["tables"].items()}


def restore(path: Path | str) -> dict[str, int]:
    """Put the rows of a dump back into the legacy tables (rows still there are left alone)."""
    data = json.loads(Path(path).read_text())
    counts = {}
    for model in m.LEGACY_MODELS:
        fields = {f.attname: f for f in model._meta.concrete_fields}
        existing = set(model.objects.values_list("pk", flat=True))
        rows = [model(**{k: fields[k].to_python(v) for k, v in row.items()})
                for row in data["tables"].get(model._meta.db_table, []) if row["id"] not in existing]
        model.objects.bulk_create(rows, batch_size=1000)
        counts[model._meta.db_table] = len(rows)
    return counts


# Sync -------------------------------------------------------------------------------------------

def sync(*, batch_size: int = 1000, progress: bool = False) -> dict[str, Any]:
    """Turn rows written in the legacy tables since the last sync into events."""
    if is_cut_over():
        raise RuleViolated("the legacy tables are cut over; nothing is written there to sync",
                           code="cut_over")
    started = timezone.now()
    last = get_state(LAST_SYNC)
    since = datetime.fromisoformat(last) if last else None
    report = Migrator(batch_size=batch_size, progress=progress, only_since=since).run()
    updated = _sync_patient_changes(since, report.refusals)
    set_state(LAST_SYNC, started.isoformat())
    return {**report.as_dict(), "patients_updated": updated, "since": last}


def _sync_patient_changes(since: datetime | None, refusals: list[Refusal]) -> int:
    """Carry changed demographics of migrated patients into PatientUpdated events."""
    mapped = dict(m.MigrationMap.objects.filter(legacy_table="legacy_patients").values_list(
        "legacy_id", "aggregate_id"))
    rows = m.Patient.objects.filter(id__in=list(mapped))
    if since is not None:
        rows = rows.filter(updated_at__gt=since)
    updated = 0
    for row in rows.order_by("updated_at", "id"):
        current = PatientReadModel.objects.filter(id=mapped[row.id]).first()
        if current is None:
            continue
        data = current.current_data
        wanted = mp.patient_fields(row)
        changes = {k: v for k, v in wanted.items() if k not in ("birth_date", "address")
                   and v != data.get(k)}
        if str(row.birth_date) != str(data.get("birth_date")):
            changes["birth_date"] = row.birth_date
        address = wanted.get("address")
        if address and {**address, "country": ""} != {**(data.get("address") or {}), "country": ""}:
            changes["address"] = address
        if not changes:
            continue
        ctx = Context(user_id=None, username="legacy-migration", role="system",
                      reason="legacy sync", effective_time=row.updated_at,
                      extra={"legacy_table": "legacy_patients", "legacy_id": row.id})
        try:
            with transaction.atomic():
                update_patient(ctx, mapped[row.id], changes, expected_version=None)
        except MedflowError as exc:
            refusals.append(Refusal("legacy_patients", row.id, exc.field, exc.code, exc.message))
            continue
        updated += 1
    return updated


# Cutover ----------------------------------------------------------------------------------------

def _create_triggers() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE OR REPLACE FUNCTION legacy_refuse_change() RETURNS trigger LANGUAGE plpgsql"
                f" AS $$ BEGIN RAISE EXCEPTION '{READ_ONLY_MESSAGE}'; END $$")
            for table in _tables():
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_read_only ON {table}")
                cursor.execute(
                    f"CREATE TRIGGER {table}_read_only BEFORE INSERT OR UPDATE OR DELETE ON {table}"
                    " FOR EACH ROW EXECUTE FUNCTION legacy_refuse_change()")
        else:
            for table in _tables():
                for action in ("INSERT", "UPDATE", "DELETE"):
                    cursor.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action}"
                        f" ON {table} BEGIN SELECT RAISE(ABORT, '{READ_ONLY_MESSAGE}'); END")


def _drop_triggers() -> None:
    with connection.cursor() as cursor:
        for table in _tables():
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_read_only ON {table}")
            else:
                for action in ("insert", "update", "delete"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
        if connection.vendor == "postgresql":
            cursor.execute("DROP FUNCTION IF EXISTS legacy_refuse_change()")


def _log_position() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(position), 0) FROM event_store")
        return int(cursor.fetchone()[0])


def cutover() -> int:
    """Make the legacy tables read-only; return the event log position at cutover."""
    with transaction.atomic():
        if is_cut_over():
            raise RuleViolated("the legacy tables are already cut over", code="cut_over")
        position = _log_position()
        _create_triggers()
        set_state(CUTOVER_POSITION, str(position))
    return position


# Archive ----------------------------------------------------------------------------------------

def archive(path: Path | str) -> dict[str, int]:
    """Write the legacy tables to `path` and empty them (only after cutover)."""
    with transaction.atomic():
        if not is_cut_over():
            raise RuleViolated("cut over before archiving the legacy tables", code="not_cut_over")
        counts = dump(path)
        _drop_triggers()
        for model in reversed(m.LEGACY_MODELS):
            model.objects.all()._raw_delete(model.objects.db)
        _create_triggers()
        set_state(ARCHIVE_PATH, str(Path(path).resolve()))
    return counts


# Rollback ---------------------------------------------------------------------------------------

def rollback(*, archive_path: Path | str | None = None) -> dict[str, Any]:
    """Make the legacy tables the source of truth again (see the module docstring)."""
    from medflow.legacy.dual_write import mirror

    with transaction.atomic():
        position = get_state(CUTOVER_POSITION)
        if position is None:
            raise RuleViolated("the legacy tables are not cut over", code="not_cut_over")
        _drop_triggers()
        restored = {}
        archived = archive_path or get_state(ARCHIVE_PATH)
        if archived:
            restored = restore(archived)
        carried = 0
        for recorded in store.iter_all(int(position)):
            carried += mirror(recorded)
        set_state(CUTOVER_POSITION, None)
        set_state(ARCHIVE_PATH, None)
        set_state(LAST_SYNC, timezone.now().isoformat())
    return {"restored": restored, "events_carried_back": carried}
