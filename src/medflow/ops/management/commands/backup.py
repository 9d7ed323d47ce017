from django.core.management.base import BaseCommand, CommandError

from medflow.ops.backup import BackupError, backup


class Command(BaseCommand):
    help = ("Back up the whole database to PATH: pg_dump custom format on PostgreSQL, SQLite's"
            " online backup API on SQLite. Safe while MedFlow runs.")

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path, **options):
        try:
            written = backup(path)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"backed up to {written} ({written.stat().st_size} bytes)")
