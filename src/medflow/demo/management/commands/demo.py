from django.core.management.base import BaseCommand, CommandError

from medflow.demo.loader import load_demo


class Command(BaseCommand):
    help = "Demo data. `medflow demo load`: create the demo clinic, user demo/demo and patients."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("load", help="create whatever demo data is missing (idempotent)")

    def handle(self, *args, action, **options):
        try:
            added = load_demo()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"demo data ready: {added['clinics']} clinic(s) and {added['patients']} patient(s) added;"
            " log in as demo / demo"
        )
