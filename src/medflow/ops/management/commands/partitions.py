from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from medflow.ops import partitions


def _month(text: str) -> date:
    try:
        year, month = text.split("-")[:2]
        return date(int(year), int(month), 1)
    except ValueError as exc:
        raise CommandError(f"--since must be YYYY-MM, not {text!r}") from exc


class Command(BaseCommand):
    help = (
        "Monthly partitions of event_store (PostgreSQL). `ensure [--ahead N] [--since YYYY-MM]`"
        " creates the missing months (moving their rows out of the default partition);"
        " `list` shows them. Run `ensure` monthly (cron) or let `medflow migrate` do it."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        ensure = sub.add_parser("ensure", help="create this month and the next N months")
        ensure.add_argument("--ahead", type=int, default=settings.MEDFLOW_PARTITIONS_AHEAD)
        ensure.add_argument("--since", type=_month, default=None,
                            help="also create the months from YYYY-MM (for older events)")
        sub.add_parser("list", help="the partitions and their bounds")

    def handle(self, *args, action, **options):
        if not partitions.is_partitioned():
            self.stdout.write("event_store is not partitioned (SQLite, or partitioning turned off)")
            return
        if action == "ensure":
            if options["ahead"] < 0:
                raise CommandError("--ahead must be 0 or more")
            created = partitions.ensure_partitions(options["ahead"], options["since"])
            for name in created:
                self.stdout.write(f"created {name}")
            self.stdout.write(f"{len(created)} partition(s) created")
        else:
            for part in partitions.list_partitions():
                self.stdout.write(f"{part.name:<24} {part.bounds}  ~{part.rows_estimate} rows")
