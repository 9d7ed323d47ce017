"""Rebuild projections from the log into shadow tables beside the live ones, then swap.

Readers keep the live tables until the swap, which replaces them in one transaction, so nobody
sees a half-built model. Writers are held back only for that last step (on PostgreSQL a table
tied to no other by a foreign key is swapped by renaming, so no row is copied meanwhile; the
others get only the rows that differ written). The shadow build reads the log in pages, once for
all the projections rebuilt together, and applies each page through the projections' batch
paths; it keeps a checkpoint per projection, committed with each page: a killed rebuild resumes
where it stopped.

The shadow build points the projection's models at the shadow tables for this process
(`_meta.db_table`), so a rebuild runs in a process of its own (the CLI), never inside the web
server.
"""

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from django.core.management.color import no_style
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from medflow.eventstore.backends import dialect
from medflow.ops.garbage import fewer_collections
from medflow.projections.catalog import Projection
from medflow.projections.models import Checkpoint
from medflow.projections.pages import Page, read_page
from medflow.projections.prefetch import PageReader, Read, pages_ahead

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
            if shadow in connection.introspection.table_names(cursor):
                return
            cursor.execute(f"CREATE TABLE {_q(shadow)} (LIKE {_q(live)} INCLUDING ALL)")
            # Indexes that enforce nothing are built once the rows are in (see
            # _complete_indexes): a sorted build costs the server far less than an index entry
            # per row, and the build waits on the server for every page.
            for name in _secondary_indexes(cursor, shadow):
                cursor.execute(f"DROP INDEX {_q(name)}")
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


def _secondary_indexes(cursor, table: str) -> list[str]:
    """Return the names of a PostgreSQL table's indexes that are neither unique nor behind a
    constraint."""
    return [name for key, (name, constraint) in (_indexes(cursor, table) or {}).items()
            if constraint is None and not key.startswith("UNIQUE ")]


def _complete_indexes(model: type[models.Model]) -> None:
    """Build on the shadow table each index of the live one that it lacks (PostgreSQL)."""
    live, shadow = model._meta.db_table, model._meta.db_table + SUFFIX
    with connection.cursor() as cursor:
        have = _indexes(cursor, shadow) or {}
        for key in _indexes(cursor, live) or {}:
            if key not in have and not key.startswith("UNIQUE "):
                cursor.execute(f"CREATE INDEX ON {_q(shadow)} {key}")


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


# A page of rare event types may span up to this many times `batch` positions.
MAX_WINDOW = 16


def _next_window(window: int, applied: int, batch: int) -> int:
    """Return the positions the next page spans: as many as should hold about `batch` events
    at the density just seen, so that projections of rare events read the log in few pages."""
    return max(batch, min(window * batch // max(applied, 1), batch * MAX_WINDOW))


def _reader(
    projections: Sequence[Projection], batch: int, until: int | None = None,
) -> Read:
    """Return a function that reads the page of the log from a position with a window: the
    event types the projections read (all, if any reads all), decoded if any reads payloads."""
    types: set[str] | None = set()
    for projection in projections:
        if projection.event_types is None or types is None:
            types = None
        else:
            types |= projection.event_types
    decode = any(p.needs_payload for p in projections)

    def read(after: int, window: int) -> Page:
        return read_page(after, batch, event_types=types, until=until, window=window,
                         decode=decode)

    return read


def _apply_page(
    projections: Sequence[Projection], checkpoints: dict[str, Checkpoint], page: Page,
) -> tuple[int, bool]:
    """Apply a page of the log to the projections' shadow tables, each from its own checkpoint;
    return how many events the page held and whether it reached the head (or `until`)."""
    moved = []
    for projection in projections:
        checkpoint = checkpoints[projection.name]
        events = _events_for(projection, checkpoint.position, page.events)
        with redirected(projection.tables):
            projection.apply(events)
        if page.read_to > checkpoint.position:
            checkpoint.position = page.read_to
            checkpoint.processed += len(events)
            checkpoint.updated_at = timezone.now()
            moved.append(checkpoint)
    _save_checkpoints(moved)
    return len(page.events), page.last


def _events_for(projection: Projection, after: int, events: list) -> list:
    """Return the page's events that the projection reads and has not applied (after its
    checkpoint): a rebuild --all sorts out eight projections' events from every page."""
    wanted = projection.event_types
    if events and events[0].position <= after:
        events = [e for e in events if e.position > after]
    if wanted is None:
        return list(events)  # each projection its own list, as it would have read it alone
    return [e for e in events if e.event_type in wanted]


def _start(checkpoints: dict[str, Checkpoint]) -> int:
    """Return where the next page starts: the position of the checkpoint furthest behind."""
    return min(c.position for c in checkpoints.values())


def _save_checkpoints(moved: list[Checkpoint]) -> None:
    """Store the checkpoints' positions, counts and times in one round trip (in the page's
    transaction); the ORM's bulk_update builds a CASE expression per field, in Python, for each
    page."""
    if not moved:
        return
    table = _q(Checkpoint._meta.db_table)
    d = dialect()
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET position = %s, processed = %s, updated_at = %s WHERE name = %s",
            [[c.position, c.processed, d.time_in(c.updated_at), c.name] for c in moved],
        )


def _locked_checkpoints(projections: Sequence[Projection]) -> dict[str, Checkpoint]:
    # One statement for all of them: a page of a rebuild --all locks eight.
    names = {_checkpoint_name(p): p.name for p in projections}
    found = {names[c.name]: c for c in
             Checkpoint.objects.select_for_update().filter(name__in=names).order_by("name")}
    missing = set(names.values()) - found.keys()
    if missing:
        raise Checkpoint.DoesNotExist(f"no rebuild checkpoint for {', '.join(sorted(missing))}")
    return found


def build_shadows(
    projections: Sequence[Projection], *, batch: int = 1000, restart: bool = False,
    progress: Callable[[int], None] = lambda n: None, until: int | None = None,
) -> int:
    """Replay the log into the projections' shadow tables, in one pass, each from its
    checkpoint, up to position `until` when given; return how many events were read."""
    for projection in projections:
        if restart:
            drop_shadows(projection)
        for model in projection.tables:
            _create_shadow(model)
        Checkpoint.objects.get_or_create(name=_checkpoint_name(projection))
    read = _reader(projections, batch, until)
    replayed, window, pages = 0, batch, 0
    with fewer_collections(), _pages(projections, read, batch) as reader:
        while True:
            with transaction.atomic():
                checkpoints = _locked_checkpoints(projections)
                page = reader.take(_start(checkpoints), window)
                applied, last = _apply_page(projections, checkpoints, page)
            window = _next_window(window, applied, batch)
            replayed += applied
            pages += 1
            if pages & (pages - 1) == 0:
                _analyze_shadows(projections)
            progress(applied)
            _failpoint(replayed)
            if last:
                return replayed


class _PagesHere:
    """Pages read when they are needed, on the caller's connection."""

    def __init__(self, read: Read) -> None:
        self.take = read


@contextmanager
def _pages(
    projections: Sequence[Projection], read: Read, batch: int,
) -> Iterator[PageReader | _PagesHere]:
    """Yield where build_shadows takes its pages from: a thread that reads them ahead on
    PostgreSQL, when each page is a transaction of its own (inside a caller's transaction, the
    thread's connection would not see what the caller wrote; SQLite has one writer and one
    file, and nothing to overlap with)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield _PagesHere(read)
        return
    checkpoints = Checkpoint.objects.filter(
        name__in=[_checkpoint_name(p) for p in projections])
    after = min(c.position for c in checkpoints)
    with pages_ahead(read, after, batch, lambda w, n: _next_window(w, n, batch)) as reader:
        yield reader


def _analyze_shadows(projections: Sequence[Projection]) -> None:
    """Give the planner the shadow tables' statistics as they grow (after pages 1, 2, 4, 8 ...:
    a few cheap runs while they are small). Planned as the empty tables they were, the
    projections' row lookups scan them whole, a page's lookups costing more as they grow;
    autovacuum, when on, comes too late for a table built in minutes."""
    if connection.vendor != "postgresql":
        return
    with transaction.atomic(), connection.cursor() as cursor:
        # A small sample: the sizes matter here, not the fine shape (the swap's ANALYZE is full).
        cursor.execute("SET LOCAL default_statistics_target = 10")
        for projection in projections:
            for model in projection.tables:
                cursor.execute(f"ANALYZE {_q(model._meta.db_table + SUFFIX)}")
        # Inside a caller's transaction (a consistency check), SET LOCAL would last until it ends.
        cursor.execute("SET LOCAL default_statistics_target TO DEFAULT")


def build_shadow(
    projection: Projection, *, batch: int = 1000, restart: bool = False,
    progress: Callable[[int], None] = lambda n: None, until: int | None = None,
) -> int:
    """Replay the log into the shadow tables from their checkpoint, up to position `until` when
    given; return how many events."""
    return build_shadows([projection], batch=batch, restart=restart, progress=progress,
                         until=until)


@contextmanager
def frozen_log(projection: Projection, batch: int = 1000) -> Iterator[int]:
    """Hold appends back, bring the shadow to the head of the log, and yield how many events that
    took; the caller swaps or compares inside the same transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Appends update inline read models: hold them until the caller is done.
        dialect().lock_global_order(cursor)
        checkpoints = _locked_checkpoints([projection])
        read = _reader([projection], batch)
        caught_up, last, window = 0, False, batch
        while not last:
            applied, last = _apply_page([projection], checkpoints,
                                        read(_start(checkpoints), window))
            window = _next_window(window, applied, batch)
            caught_up += applied
        yield caught_up


def rebuild(
    projection: Projection, *, batch: int = 1000, restart: bool = False,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Rebuild one projection from the whole log; return how many events were replayed."""
    return rebuild_many([projection], batch=batch, restart=restart, progress=progress)[
        projection.name]


def rebuild_many(
    projections: Sequence[Projection], *, batch: int = 1000, restart: bool = False,
    progress: Callable[[int], None] = lambda n: None,
) -> dict[str, int]:
    """Rebuild projections from the whole log, reading it once for all of them, then swap each
    in; return how many events each one was replayed from."""
    build_shadows(projections, batch=batch, restart=restart, progress=progress)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for projection in projections:
                for model in projection.tables:
                    _complete_indexes(model)
                    # Fresh statistics, so that queries plan well on a renamed-in table.
                    cursor.execute(f"ANALYZE {_q(model._meta.db_table + SUFFIX)}")
    replayed = {}
    for projection in projections:
        with frozen_log(projection, batch):
            _swap(projection)
            # Counted since the rebuild began, a resumed one included.
            replayed[projection.name] = Checkpoint.objects.get(
                name=_checkpoint_name(projection)).processed
        drop_shadows(projection)
    return replayed


def _swap(projection: Projection) -> None:
    """Replace the live rows by the shadow's (inside frozen_log's transaction).

    On PostgreSQL a table that no foreign key ties to another takes the shadow's place whole
    (renamed, with the live names of its indexes): no row is copied while appends wait. The
    others are brought to the shadow's rows by writing only the rows that differ. Then the
    projection's after_swap, if any.
    """
    position = Checkpoint.objects.get(name=_checkpoint_name(projection)).position
    if projection.kind != "inline":
        live, _ = Checkpoint.objects.select_for_update().get_or_create(name=projection.name)
        live.position, live.last_error = position, ""
        live.save(update_fields=["position", "last_error", "updated_at"])
    with connection.cursor() as cursor:
        renamed = [m for m in projection.tables if _can_rename(cursor, m)]
        copied = [m for m in projection.tables if m not in renamed]
        try:
            with transaction.atomic():
                _copy_differences(cursor, copied)
        except IntegrityError:
            # Rows changed in an order that trips a unique constraint on the way (two rows
            # swapping a value): replace all the rows instead.
            _copy_all(cursor, copied)
        for model in renamed:
            _rename_into_place(cursor, model)
        # Rows came in with their ids: move PostgreSQL's identity sequences past them.
        for sql in connection.ops.sequence_reset_sql(no_style(), projection.tables):
            cursor.execute(sql)
    if projection.after_swap is not None:
        projection.after_swap()


def _indexes(cursor, table: str) -> dict[str, tuple[str, str | None]] | None:
    """Return a PostgreSQL table's indexes by definition (less name and table): their name and
    the name of the constraint they back, if any; None when two definitions are alike."""
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid), c.conname FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid"
        " LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid"
        " WHERE x.indrelid = to_regclass(%s)", [_q(table)],
    )
    rows = cursor.fetchall()
    found = {_index_key(definition): (name, constraint) for name, definition, constraint in rows}
    return found if len(found) == len(rows) else None


def _index_key(definition: str) -> str:
    """Return an index definition less its name and table: "USING btree (a, b)", with
    "UNIQUE " first for a unique one."""
    return re.sub(r"^CREATE (UNIQUE )?INDEX \S+ ON \S+ ", r"\1", definition)


def _can_rename(cursor, model: type[models.Model]) -> bool:
    """Tell whether the shadow can take the live table's place by renaming (PostgreSQL, no
    foreign key from or to the table, no trigger on it, the same indexes)."""
    if connection.vendor != "postgresql":
        return False
    live = model._meta.db_table
    cursor.execute(
        "SELECT 1 FROM pg_constraint WHERE contype = 'f'"
        " AND (conrelid = to_regclass(%s) OR confrelid = to_regclass(%s))", [_q(live), _q(live)],
    )
    if cursor.fetchone() is not None:
        return False
    # A trigger (e.g. patients' name words, migration 0007) would go with the dropped table: the
    # rows are copied in instead, and the trigger sees them.
    cursor.execute("SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal",
                   [_q(live)])
    if cursor.fetchone() is not None:
        return False
    live_indexes, shadow_indexes = _indexes(cursor, live), _indexes(cursor, live + SUFFIX)
    return live_indexes is not None and shadow_indexes is not None and (
        live_indexes.keys() == shadow_indexes.keys())


def _rename_into_place(cursor, model: type[models.Model]) -> None:
    """Drop the live table and give the shadow its name, its indexes' and its sequence's."""
    live, shadow = model._meta.db_table, model._meta.db_table + SUFFIX
    names = _indexes(cursor, live)
    pk = model._meta.pk.column
    cursor.execute("SELECT pg_get_serial_sequence(%s, %s), pg_get_serial_sequence(%s, %s)",
                   [_q(live), pk, _q(shadow), pk])
    live_sequence, shadow_sequence = cursor.fetchone()
    cursor.execute(f"DROP TABLE {_q(live)}")
    cursor.execute(f"ALTER TABLE {_q(shadow)} RENAME TO {_q(live)}")
    for key, (name, constraint) in _indexes(cursor, live).items():
        live_name, live_constraint = names[key]
        if constraint is not None and live_constraint is not None:
            # Renaming a constraint renames the index that backs it.
            cursor.execute(f"ALTER TABLE {_q(live)} RENAME CONSTRAINT {_q(constraint)}"
                           f" TO {_q(live_constraint)}")
            name = live_constraint
        if name != live_name:
            cursor.execute(f"ALTER INDEX {_q(name)} RENAME TO {_q(live_name)}")
    if live_sequence and shadow_sequence:
        cursor.execute(f"ALTER SEQUENCE {shadow_sequence} RENAME TO"
                       f" {_q(live_sequence.split('.')[-1].strip(chr(34)))}")


def _copy_all(cursor, copied: list[type[models.Model]]) -> None:
    """Replace every live row by the shadow's."""
    for model in reversed(copied):
        cursor.execute(f"DELETE FROM {_q(model._meta.db_table)}")
    for model in copied:
        columns = _columns(model)
        cursor.execute(
            f"INSERT INTO {_q(model._meta.db_table)} ({columns})"
            f" SELECT {columns} FROM {_q(model._meta.db_table + SUFFIX)}"
        )


def _copy_differences(cursor, copied: list[type[models.Model]]) -> None:
    """Bring the live rows to the shadow's by changing only the rows that differ.

    A rebuild mostly finds the rows it replaces unchanged: deleting and inserting them all
    rewrites every row and its indexes, and runs the table's triggers on all of them (patients'
    name words: 2.5 s for 4,000 patients). Tables with a surrogate id are replaced whole (their
    ids say nothing about which row is which).
    """
    natural = [m for m in copied if not isinstance(m._meta.pk, models.AutoField)]
    _copy_all(cursor, [m for m in copied if m not in natural])
    for model in reversed(natural):
        live, shadow, pk = _q(model._meta.db_table), _q(model._meta.db_table + SUFFIX), \
            _q(model._meta.pk.column)
        cursor.execute(f"DELETE FROM {live} WHERE NOT EXISTS"
                       f" (SELECT 1 FROM {shadow} s WHERE s.{pk} = {live}.{pk})")
    for model in natural:
        live, shadow, pk = _q(model._meta.db_table), _q(model._meta.db_table + SUFFIX), \
            _q(model._meta.pk.column)
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        others = [_q(f.column) for f in fields]
        if others:
            test = "IS NOT" if connection.vendor == "sqlite" else "IS DISTINCT FROM"
            differs = " OR ".join(
                f"{_as_compared(f, f'{live}.{_q(f.column)}')} {test}"
                f" {_as_compared(f, f's.{_q(f.column)}')}" for f in fields
            )
            cursor.execute(
                f"UPDATE {live} SET {', '.join(f'{c} = s.{c}' for c in others)}"
                f" FROM {shadow} s WHERE s.{pk} = {live}.{pk} AND ({differs})"
            )
        columns = _columns(model)
        cursor.execute(
            f"INSERT INTO {live} ({columns}) SELECT {columns} FROM {shadow} s"
            f" WHERE NOT EXISTS (SELECT 1 FROM {live} l WHERE l.{pk} = s.{pk})"
        )


def _as_compared(field: models.Field, column: str) -> str:
    """Return the expression that compares a column's values as they are stored.

    PostgreSQL's jsonb equality is numeric within the document: `{"n": 1}` equals `{"n": 1.0}`,
    which a reader gets back as an int and a float. Compared as text (jsonb's text is already
    normalised: key order, spaces) they differ, as the replay says they do.
    """
    if connection.vendor == "postgresql" and field.get_internal_type() == "JSONField":
        return f"{column}::text"
    return column


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
    columns = ", ".join(_as_compared(f, _q(f.column)) for f in fields)
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
