from django.core.management.base import BaseCommand, CommandError

from medflow.access import services
from medflow.context import system_context
from medflow.errors import MedflowError


class Command(BaseCommand):
    help = "Clinics. `medflow clinic create NAME --code CODE`."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="open a clinic")
        create.add_argument("name")
        create.add_argument("--code", required=True, help="short unique code, e.g. north")

    def handle(self, *args, action, **options):
        try:
            result = services.create_clinic(
                system_context("clinic create"), options["name"], options["code"]
            )
        except MedflowError as exc:
            raise CommandError(f"{exc.field or 'clinic'}: {exc.message}") from exc
        self.stdout.write(str(result.aggregate_id))
