import getpass

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from medflow.access import services
from medflow.context import system_context
from medflow.errors import MedflowError


class Command(BaseCommand):
    help = (
        "Staff. `medflow staff create USERNAME --clinic CODE --role ROLE` creates a user (asks for"
        " a password) and grants the role; `grant` and `revoke` change roles."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a staff user with a role in a clinic")
        create.add_argument("username")
        create.add_argument("--clinic", required=True, help="clinic code")
        create.add_argument("--role", required=True,
                            choices=["doctor", "nurse", "receptionist", "admin"])
        create.add_argument("--password", help="password (asked for when absent)")
        grant = sub.add_parser("grant", help="give an existing user a role in a clinic")
        grant.add_argument("username")
        grant.add_argument("--clinic", required=True)
        grant.add_argument("--role", required=True,
                           choices=["doctor", "nurse", "receptionist", "admin"])
        revoke = sub.add_parser("revoke", help="take a user's role in a clinic away")
        revoke.add_argument("username")
        revoke.add_argument("--clinic", required=True)

    def handle(self, *args, action, **options):
        ctx = system_context(f"staff {action}")
        try:
            with transaction.atomic():
                clinic = services.clinic_by_code(options["clinic"])
                if action == "create":
                    self._create_user(options["username"], options.get("password"))
                if action == "revoke":
                    services.revoke_role(ctx, clinic.id, options["username"])
                else:
                    services.grant_role(ctx, clinic.id, options["username"], options["role"])
        except MedflowError as exc:
            raise CommandError(f"{exc.field or 'staff'}: {exc.message}") from exc
        self.stdout.write(f"{action}: {options['username']} at {clinic.code}")

    def _create_user(self, username: str, password: str | None) -> None:
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise CommandError(f"user {username!r} exists; use `medflow staff grant`")
        password = password or getpass.getpass(f"password for {username}: ")
        if len(password) < 8:
            raise CommandError("password: use at least 8 characters")
        User.objects.create_user(username=username, password=password)
