import sys

from django.core.management.base import BaseCommand, CommandError

from medflow.ops.backup import BackupError, restore


class Command(BaseCommand):
    help = ("Replace the database's contents with the backup at PATH (from `medflow backup`)."
            " Stop the web servers and workers first; run `medflow verify` afterwards.")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, path, yes, **options):
        if not yes:
            if not sys.stdin.isatty():
                raise CommandError("pass --yes to restore without a terminal")
            answer = input(f"Replace every row of the database with {path}? Type 'yes': ")
            if answer.strip().lower() != "yes":
                raise CommandError("restore cancelled")
        try:
            restore(path)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"restored from {path}; run `medflow verify` to check it")
