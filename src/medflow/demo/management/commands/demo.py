from django.core.management.base import BaseCommand, CommandError

from medflow.demo.loader import load_demo


class Command(BaseCommand):
    help = (
        "Demo data. `medflow demo load`: create the demo clinic, users (demo/demo and others)"
        " and patients with clinical histories."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("load", help="create whatever demo data is missing (idempotent)")

    def handle(self, *args, action, **options):
        try:
            added = load_demo()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"demo data ready: {added['clinics']} clinic(s) and {added['patients']} patient(s)"
            f" added ({added['skipped']} sample item(s) refused by the services, see the log);"
            " log in as demo / demo"
        )
