"""`medflow legacy <subcommand>`: load, migrate, validate, and the rollback procedure's steps."""

import argparse
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from medflow.errors import MedflowError


class Command(BaseCommand):
    help = ("The old CRUD system's data and its migration into events: load-synthea, migrate,"
            " validate, backup, sync, cutover, archive, rollback (see `medflow legacy SUBCOMMAND -h`).")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        load = sub.add_parser("load-synthea", help="load a Synthea CSV export")
        load.add_argument("path")
        load.add_argument("--scale", type=int, default=1, help="load N copies of every patient")
        migrate = sub.add_parser("migrate", help="migrate legacy rows into events")
        migrate.add_argument("--batch-size", type=int, default=1000)
        migrate.add_argument("--dry-run", action="store_true", help="do it all, then roll back")
        migrate.add_argument("--json", action="store_true", help="print the reports as JSON")
        migrate.add_argument(
            "--workers", type=_positive, default=1,
            help="processes to share the steps by patient (encounters onwards) among; on"
                 " PostgreSQL up to one a CPU core is faster, SQLite takes their batches in turn")
        validate = sub.add_parser("validate", help="compare legacy rows with migrated records")
        validate.add_argument("--json", action="store_true")
        backup = sub.add_parser("backup", help="dump the legacy tables to a JSON file")
        backup.add_argument("path")
        sync = sub.add_parser("sync", help="migrate rows written in the legacy tables since last sync")
        sync.add_argument("--batch-size", type=int, default=1000)
        sub.add_parser("cutover", help="make the legacy tables read-only")
        archive = sub.add_parser("archive", help="write the legacy tables to a file and empty them")
        archive.add_argument("path")
        rollback = sub.add_parser("rollback", help="legacy tables become the source of truth again")
        rollback.add_argument("--archive", help="restore the rows of this archive file first")

    def handle(self, *args, action, **options):
        try:
            return getattr(self, action.replace("-", "_"))(**options)
        except MedflowError as exc:
            raise CommandError(f"{exc.field or exc.code}: {exc.message}") from exc

    def _progress(self, options) -> bool:
        return options.get("verbosity", 1) >= 1

    def load_synthea(self, path, scale, **options):
        from medflow.legacy.synthea import LoadError, load_synthea

        try:
            summary = load_synthea(Path(path), scale=scale, progress=self._progress(options))
        except LoadError as exc:
            raise CommandError(str(exc)) from exc
        for table, count in summary.counts.items():
            self.stdout.write(f"{table}: {count} rows loaded")
        for what, count in sorted(summary.skipped.items()):
            self.stdout.write(f"skipped {what}: {count}")

    def migrate(self, batch_size, dry_run, json, workers, **options):
        from medflow.legacy import ops
        from medflow.legacy.migrate import migrate
        from medflow.legacy.validate import validate
        from medflow.legacy.workers import WorkerFailed

        try:
            report = migrate(batch_size=batch_size, dry_run=dry_run, workers=workers,
                             progress=self._progress(options))
        except WorkerFailed as exc:
            raise CommandError(f"{exc} (what was committed stays: run migrate again to resume)"
                               ) from exc
        if not dry_run and ops.get_state(ops.LAST_SYNC) is None:
            from django.utils import timezone

            ops.set_state(ops.LAST_SYNC, timezone.now().isoformat())
        checked = None if dry_run else validate()
        if json:
            self.stdout.write(_json({"migration": report.as_dict(),
                                     "validation": checked.as_dict() if checked else None}))
        else:
            self.stdout.write(("DRY RUN (nothing written)\n" if dry_run else "") +
                              f"events: {report.events}")
            for table, count in report.migrated.items():
                self.stdout.write(f"{table}: {count} migrated, {report.already[table]} already")
            for r in report.refusals:
                self.stdout.write(f"REFUSED {r.table} {r.row_id} {r.field or '-'}: {r.message}")
            if checked:
                self.stdout.write(checked.text())
        if report.refusals or (checked and not checked.ok):
            raise CommandError(f"{len(report.refusals)} rows refused"
                               + (f", {len(checked.mismatches)} mismatches" if checked else ""))

    def validate(self, json, **options):
        from medflow.legacy.validate import validate

        checked = validate()
        self.stdout.write(_json(checked.as_dict()) if json else checked.text())
        if not checked.ok:
            raise CommandError(f"validation failed: {len(checked.mismatches)} mismatches")

    def backup(self, path, **options):
        from medflow.legacy.ops import dump

        for table, count in dump(path).items():
            self.stdout.write(f"{table}: {count} rows")
        self.stdout.write(f"written to {path}")

    def sync(self, batch_size, **options):
        from medflow.legacy.ops import sync

        result = sync(batch_size=batch_size, progress=self._progress(options))
        self.stdout.write(_json(result))
        if result["refused"]:
            raise CommandError(f"{len(result['refused'])} rows refused")

    def cutover(self, **options):
        from medflow.legacy.ops import cutover

        position = cutover()
        self.stdout.write(f"legacy tables are read-only from event log position {position}")

    def archive(self, path, **options):
        from medflow.legacy.ops import archive

        counts = archive(path)
        self.stdout.write(f"archived {sum(counts.values())} rows to {path}")

    def rollback(self, archive, **options):
        from medflow.legacy.ops import rollback

        self.stdout.write(_json(rollback(archive_path=archive)))


def _positive(text: str) -> int:
    """Parse a count of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _json(data) -> str:
    return json.dumps(data, indent=1, default=str)
