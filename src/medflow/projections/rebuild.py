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


def _apply_batch(projection: Projection, checkpoint: Checkpoint, batch: int) -> int:
    events = store.read_all(after=checkpoint.position, limit=batch)
    with redirected(projection.tables):
        for recorded in events:
            projection.handle(recorded)
    if events:
        checkpoint.position = events[-1].position
        checkpoint.processed += len(events)
        checkpoint.save(update_fields=["position", "processed", "updated_at"])
    return len(events)


def rebuild(
    projection: Projection, *, batch: int = 1000, restart: bool = False,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Rebuild one projection from the whole log; return how many events were replayed."""
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
            applied = _apply_batch(projection, checkpoint, batch)
        replayed += applied
        progress(applied)
        _failpoint(replayed)
        if applied < batch:
            break
    replayed += _swap(projection, name, batch)
    drop_shadows(projection)
    return replayed


def _swap(projection: Projection, name: str, batch: int) -> int:
    """Catch the shadow up with appends held back, then replace the live rows in one go."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Hold appends (they update inline read models) until the new rows are in.
        dialect().lock_global_order(cursor)
        checkpoint = Checkpoint.objects.select_for_update().get(name=name)
        caught_up = 0
        while applied := _apply_batch(projection, checkpoint, batch):
            caught_up += applied
        if projection.kind != "inline":
            live, _ = Checkpoint.objects.select_for_update().get_or_create(name=projection.name)
            live.position, live.last_error = checkpoint.position, ""
            live.save(update_fields=["position", "last_error", "updated_at"])
        for model in reversed(projection.tables):
            cursor.execute(f"DELETE FROM {_q(model._meta.db_table)}")
        for model in projection.tables:
            columns = ", ".join(_q(f.column) for f in model._meta.concrete_fields)
            cursor.execute(
                f"INSERT INTO {_q(model._meta.db_table)} ({columns})"
                f" SELECT {columns} FROM {_q(model._meta.db_table + SUFFIX)}"
            )
        # Rows came in with their ids: move PostgreSQL's identity sequences past them.
        for sql in connection.ops.sequence_reset_sql(no_style(), projection.tables):
            cursor.execute(sql)
    return caught_up


def replay_into_shadow(projection: Projection, batch: int = 1000) -> None:
    """Build the shadow tables from the whole log without swapping (for verification)."""
    drop_shadows(projection)
    for model in projection.tables:
        _create_shadow(model)
    Checkpoint.objects.get_or_create(name=_checkpoint_name(projection))
    with transaction.atomic():
        checkpoint = Checkpoint.objects.select_for_update().get(name=_checkpoint_name(projection))
        while _apply_batch(projection, checkpoint, batch):
            pass
