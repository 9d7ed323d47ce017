"""Check every read model against a fresh replay of the log (the seeds' consistency_check) and
stream-keyed read models against their stream's version (version_match)."""

from collections.abc import Iterator

from django.db import connection, transaction

from medflow.eventstore.backends import dialect
from medflow.eventstore.integrity import Violation
from medflow.projections.catalog import Projection, all_projections
from medflow.projections.models import Checkpoint
from medflow.projections.rebuild import build_shadow, differences, drop_shadows, frozen_log


def version_mismatches(model) -> Iterator[Violation]:
    """Yield rows whose version differs from their stream's (or that have no stream)."""
    q = connection.ops.quote_name
    table, pk = q(model._meta.db_table), q(model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.{pk}, r.version, s.version FROM {table} r"
            f" LEFT JOIN streams s ON s.aggregate_id = r.{pk}"
            " WHERE s.version IS NULL OR s.version <> r.version"
        )
        for key, row_version, stream_version in cursor.fetchall():
            yield Violation("version_match", f"{model._meta.db_table} {dialect().uuid_out(key)}",
                            f"read model at version {row_version}, stream at {stream_version}")


def _compare(projection: Projection) -> Iterator[Violation]:
    for model in projection.tables:
        for key, kind in differences(model):
            yield Violation("consistency_check", f"{model._meta.db_table} {key}",
                            f"row {kind} compared with a fresh replay")
    for model in projection.stream_versioned:
        yield from version_mismatches(model)


def check_projection(projection: Projection, batch: int = 2000) -> Iterator[Violation]:
    """Replay the log into shadow tables and yield every row that differs from the live one.

    An inline projection is compared with the whole log, appends held back; a catch-up one with
    the log up to its checkpoint, its worker held back.
    """
    try:
        if projection.kind == "inline":
            build_shadow(projection, batch=batch, restart=True)
            with frozen_log(projection, batch):
                yield from _compare(projection)
            return
        with transaction.atomic():
            Checkpoint.objects.get_or_create(name=projection.name)
            checkpoint = Checkpoint.objects.select_for_update().get(name=projection.name)
            build_shadow(projection, batch=batch, restart=True, until=checkpoint.position)
            yield from _compare(projection)
    finally:
        drop_shadows(projection)


def check_read_models(batch: int = 2000) -> Iterator[Violation]:
    """Yield the violations of every projection."""
    for projection in all_projections().values():
        yield from check_projection(projection, batch)
