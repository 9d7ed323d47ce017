"""Rebuild a projection from the log into shadow tables beside the live ones, then swap.

Readers keep the live tables until the swap, which replaces their rows in one transaction, so
nobody sees a half-built model. Writers are held back only for that last step. The shadow build
keeps a checkpoint of its own: a killed rebuild resumes where it stopped.

The shadow build points the projection's models at the shadow tables for this process
(`_meta.db_table`), so a rebuild runs in a process of its own (the CLI), never inside the web
server.
"""

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.management.color import no_style
from django.db import connection, models, transaction

from medflow.eventstore import store
from medflow.eventstore.backends import dialect
from medflow.projections.catalog import Projection
from medflow.projections.models import Checkpoint

SUFFIX = "__rebuild"


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _point(model: type[models.Model], table: str) -> None:
    model._meta.db_table = table
    # Each field caches a column reference that names the table (Field.cached_col).
    for field in model._meta.concrete_fields:
        field.__dict__.pop("cached_col", None)


@contextmanager
def redirected(tables: list[type[models.Model]]) -> Iterator[None]:
    """Point the models at their shadow tables for the duration."""
    originals = {model: model._meta.db_table for model in tables}
    try:
        for model, table in originals.items():
            _point(model, table + SUFFIX)
        yield
    finally:
        for model, table in originals.items():
            _point(model, table)


def _create_shadow(model: type[models.Model]) -> None:
    live = model._meta.db_table
    shadow = live + SUFFIX
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # LIKE copies columns, defaults, identity, primary key, unique constraints and
            # indexes (with new names), never foreign keys: the shadow must not point at live rows.
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {_q(shadow)} (LIKE {_q(live)} INCLUDING ALL)")
            return
        if shadow in connection.introspection.table_names(cursor):
            return
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [live])
        create = cursor.fetchone()[0]
        create = create.replace(_q(live), _q(shadow), 1)
        create = re.sub(r' REFERENCES "[^"]+" \("[^"]+"\)( DEFERRABLE INITIALLY DEFERRED)?', "", create)
        cursor.execute(create)
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s"
            " AND sql IS NOT NULL", [live],
        )
        for index, sql in cursor.fetchall():
            sql = sql.replace(_q(index), _q(index + SUFFIX), 1).replace(_q(live), _q(shadow), 1)
            cursor.execute(sql)


def drop_shadows(projection: Projection) -> None:
    """Drop the projection's shadow tables and its rebuild checkpoint."""
    with connection.cursor() as cursor:
        for model in reversed(projection.tables):
            cursor.execute(f"DROP TABLE IF EXISTS {_q(model._meta.db_table + SUFFIX)}")
    Checkpoint.objects.filter(name=_checkpoint_name(projection)).delete()


def _checkpoint_name(projection: Projection) -> str:
    return f"rebuild:{projection.name}"


def _failpoint(replayed: int) -> None:
    # Test hook: MEDFLOW_FAILPOINT=rebuild-after:N kills the process once N events are in the
    # shadow tables, as a crash would.
    spec = os.environ.get("MEDFLOW_FAILPOINT", "")
    if spec.startswith("rebuild-after:") and replayed >= int(spec.split(":")[1]):
        os._exit(70)


def _apply_batch(
    projection: Projection, checkpoint: Checkpoint, batch: int, until: int | None = None
) -> int:
    events = store.read_all(after=checkpoint.position, limit=batch)
    if until is not None:
        events = [e for e in events if e.position <= until]
    with redirected(projection.tables):
        for recorded in events:
            projection.handle(recorded)
    if events:
        checkpoint.position = events[-1].position
        checkpoint.processed += len(events)
        checkpoint.save(update_fields=["position", "processed", "updated_at"])
    return len(events)


def build_shadow(
    projection: Projection, *, batch: int = 1000, restart: bool = False,
    progress: Callable[[int], None] = lambda n: None, until: int | None = None,
) -> int:
    """Replay the log into the shadow tables from their checkpoint, up to position `until` when
    given; return how many events."""
    if restart:
        drop_shadows(projection)
    for model in projection.tables:
        _create_shadow(model)
    name = _checkpoint_name(projection)
    Checkpoint.objects.get_or_create(name=name)
    replayed = 0
    while True:
        with transaction.atomic():
            checkpoint = Checkpoint.objects.select_for_update().get(name=name)
            applied = _apply_batch(projection, checkpoint, batch, until)
        replayed += applied
        progress(applied)
        _failpoint(replayed)
        if applied < batch:
            return replayed


@contextmanager
def frozen_log(projection: Projection, batch: int = 1000) -> Iterator[int]:
    """Hold appends back, bring the shadow to the head of the log, and yield how many events that
    took; the caller swaps or compares inside the same transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Appends update inline read models: hold them until the caller is done.
        dialect().lock_global_order(cursor)
        checkpoint = Checkpoint.objects.select_for_update().get(name=_checkpoint_name(projection))
        caught_up = 0
        while applied := _apply_batch(projection, checkpoint, batch):
            caught_up += applied
        yield caught_up


def rebuild(
    projection: Projection, *, batch: int = 1000, restart: bool = False,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Rebuild one projection from the whole log; return how many events were replayed."""
    replayed = build_shadow(projection, batch=batch, restart=restart, progress=progress)
    with frozen_log(projection, batch) as caught_up:
        _swap(projection)
    drop_shadows(projection)
    return replayed + caught_up


def _swap(projection: Projection) -> None:
    """Replace the live rows by the shadow's (inside frozen_log's transaction)."""
    position = Checkpoint.objects.get(name=_checkpoint_name(projection)).position
    if projection.kind != "inline":
        live, _ = Checkpoint.objects.select_for_update().get_or_create(name=projection.name)
        live.position, live.last_error = position, ""
        live.save(update_fields=["position", "last_error", "updated_at"])
    with connection.cursor() as cursor:
        for model in reversed(projection.tables):
            cursor.execute(f"DELETE FROM {_q(model._meta.db_table)}")
        for model in projection.tables:
            columns = _columns(model)
            cursor.execute(
                f"INSERT INTO {_q(model._meta.db_table)} ({columns})"
                f" SELECT {columns} FROM {_q(model._meta.db_table + SUFFIX)}"
            )
        # Rows came in with their ids: move PostgreSQL's identity sequences past them.
        for sql in connection.ops.sequence_reset_sql(no_style(), projection.tables):
            cursor.execute(sql)


def _columns(model: type[models.Model]) -> str:
    return ", ".join(_q(f.column) for f in model._meta.concrete_fields)


def _compared_fields(model: type[models.Model]) -> list:
    # A surrogate auto-increment id says nothing about content: compare the other columns.
    fields = model._meta.concrete_fields
    if isinstance(model._meta.pk, models.AutoField):
        return [f for f in fields if not f.primary_key]
    return list(fields)


def _display_key(model: type[models.Model], row: tuple) -> str:
    if isinstance(model._meta.pk, models.AutoField):
        return "(" + ", ".join(str(v) for v in row[:3]) + ")"
    if isinstance(model._meta.pk, models.UUIDField):
        return str(dialect().uuid_out(row[0]))
    return str(row[0])


def differences(model: type[models.Model], limit: int = 20) -> list[tuple[str, str]]:
    """Compare a live table with its shadow; return (row key, "missing"/"extra"/"differs") for
    rows that are not equal (inside frozen_log's transaction). The key is the primary key, or the
    first columns for tables with a surrogate id."""
    live, shadow = _q(model._meta.db_table), _q(model._meta.db_table + SUFFIX)
    fields = _compared_fields(model)
    columns = ", ".join(_q(f.column) for f in fields)
    found: dict[str, str] = {}
    with connection.cursor() as cursor:
        # Rows of the live table that a fresh replay does not produce, and the other way round.
        for side, first, second in (("extra", live, shadow), ("missing", shadow, live)):
            cursor.execute(
                f"SELECT {columns} FROM {first} EXCEPT SELECT {columns} FROM {second} LIMIT %s",
                [limit],
            )
            for row in cursor.fetchall():
                key = _display_key(model, row)
                found[key] = "differs" if key in found else side
    return sorted(found.items())
