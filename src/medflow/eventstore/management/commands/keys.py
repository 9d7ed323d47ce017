import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from medflow.eventstore import crypto


class Command(BaseCommand):
    help = (
        "Master keys. `generate` prints a new master key. `rotate` re-wraps every data key under"
        " the current MEDFLOW_MASTER_KEY: set the new key there and the old one in"
        " MEDFLOW_PREVIOUS_MASTER_KEYS, run `medflow keys rotate`, then drop the old key."
        " Events are not touched."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("generate", help="print a new random master key")
        sub.add_parser("rotate", help="re-wrap data keys under the current master key")
        sub.add_parser("status", help="how many data keys each master key wraps")

    def handle(self, *args, action, **options):
        if action == "generate":
            self.stdout.write(crypto.generate_master_key())
            return
        try:
            current, known = crypto.master_keys()
        except ValueError as exc:
            raise CommandError(f"MEDFLOW_MASTER_KEY: {exc}") from exc
        from medflow.eventstore.models import DataKey

        if action == "status":
            for master_id in sorted(set(DataKey.objects.values_list("master_key_id", flat=True))):
                count = DataKey.objects.filter(master_key_id=master_id, destroyed_at=None).count()
                mark = "current" if master_id == current else (
                    "previous" if master_id in known else "UNKNOWN")
                self.stdout.write(f"{master_id}  {mark:<8} {count} live data key(s)")
            return
        try:
            with transaction.atomic():
                changed = crypto.rotate()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"re-wrapped {changed} data key(s) under master key {current}")
        if settings.MEDFLOW_PREVIOUS_MASTER_KEYS and not os.environ.get("MEDFLOW_KEEP_PREVIOUS"):
            self.stdout.write("every live data key now uses the current master key: remove"
                              " MEDFLOW_PREVIOUS_MASTER_KEYS")
