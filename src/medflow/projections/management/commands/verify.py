import orjson
from django.core.management.base import BaseCommand, CommandError

from medflow.audit.chain import check_chain
from medflow.eventstore.integrity import check_store
from medflow.projections.consistency import check_read_models

RULES = ("version_continuity", "timestamp_order", "position_order", "data_schema_valid",
         "consistency_check", "version_match", "access_log_chain")


class Command(BaseCommand):
    help = (
        "Check the whole store: versions continuous per stream, timestamps ordered, every payload"
        " valid against its schema, every read model equal to a fresh replay with matching"
        " versions, the access log's hash chain unbroken. Prints each bad stream or row; exits"
        " non-zero on any violation."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--store-only", action="store_true",
                            help="skip the read-model replay (fast)")

    def handle(self, *args, **options):
        violations = list(check_store()) + list(check_chain())
        if not options["store_only"]:
            violations += list(check_read_models())
        counts = {rule: sum(v.rule == rule for v in violations) for rule in RULES}
        if options["json"]:
            report = {"ok": not violations, "counts": counts,
                      "violations": [v.__dict__ for v in violations]}
            self.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        else:
            for v in violations:
                self.stdout.write(f"{v.rule:<20} {v.subject}  {v.detail}")
            for rule, count in counts.items():
                self.stdout.write(f"{'FAIL' if count else 'ok':<5}{rule}: {count} violation(s)")
        if violations:
            raise CommandError(f"verify found {len(violations)} violation(s)")
