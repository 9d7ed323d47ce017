from django.conf import settings
from django.core.management.base import BaseCommand

from medflow.access.retention import apply_retention


class Command(BaseCommand):
    help = (
        "Retention. `medflow retention apply [--dry-run]` archives the streams past their retention"
        " period (MEDFLOW_RETENTION_YEARS per record type): lists them in retention_archive and"
        " drops their snapshots and cache entries; events are kept. See medflow.access.retention."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        apply = sub.add_parser("apply", help="archive the streams past their retention period")
        apply.add_argument("--dry-run", action="store_true", help="only say what would be archived")

    def handle(self, *args, action, **options):
        years = settings.MEDFLOW_RETENTION_YEARS
        report = apply_retention(years, dry_run=options["dry_run"])
        verb = "would archive" if report.dry_run else "archived"
        for aggregate_type, count in sorted(report.archived.items()):
            self.stdout.write(f"{aggregate_type}: {verb} {count} (kept {years[aggregate_type]} years)")
        self.stdout.write(f"{verb} {report.total} stream(s); {report.reactivated} changed since"
                          f" archiving {'would be' if report.dry_run else 'were'} taken off the list;"
                          f" {report.snapshots_dropped} snapshot(s) dropped")
