import orjson
from django.core.management.base import BaseCommand

from medflow.access.permissions import PERMISSIONS, render_matrix


class Command(BaseCommand):
    help = (
        "Access control. `medflow access permissions [--json]` prints which role may run which"
        " command or query (the table in medflow.access.permissions)."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        perms = sub.add_parser("permissions", help="print the permission matrix")
        perms.add_argument("--json", action="store_true", help="print JSON: name -> roles")

    def handle(self, *args, action, **options):
        if options.get("json"):
            data = {
                name: {"roles": sorted(p.roles), "summary": p.summary, "condition": p.condition}
                for name, p in PERMISSIONS.items()
            }
            self.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
            return
        self.stdout.write(render_matrix())
