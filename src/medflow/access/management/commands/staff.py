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
        " a password) and grants the role; `grant` and `revoke` change roles; `totp USERNAME`"
        " prints a TOTP provisioning URI (otpauth://), `totp USERNAME --confirm CODE` turns the"
        " second factor on, `totp USERNAME --remove` turns it off."
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
        totp = sub.add_parser("totp", help="set up (or remove) a TOTP second factor")
        totp.add_argument("username")
        totp.add_argument("--confirm", metavar="CODE",
                          help="a code from the authenticator app; turns the device on")
        totp.add_argument("--remove", action="store_true", help="remove the user's TOTP devices")

    def handle(self, *args, action, **options):
        if action == "totp":
            self._totp(options["username"], options.get("confirm"), options["remove"])
            return
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

    def _totp(self, username: str, confirm: str | None, remove: bool) -> None:
        """Print a provisioning URI for a new, unconfirmed device; confirm it with a code.

        Until a device is confirmed the login asks for no code, so that a user who never scanned
        the URI is not locked out; once confirmed, /api/auth/login requires `otp`.
        """
        from django_otp.plugins.otp_totp.models import TOTPDevice

        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"username: no user {username!r}")
        devices = TOTPDevice.objects.filter(user=user)
        if remove:
            count, _ = devices.delete()
            self.stdout.write(f"removed {count} TOTP device(s) of {username}")
            return
        if confirm:
            device = devices.filter(confirmed=False).order_by("-id").first()
            if device is None:
                raise CommandError("no pending TOTP device; run `medflow staff totp USERNAME` first")
            if not device.verify_token(confirm.strip()):
                raise CommandError("confirm: the code is wrong or expired; try the current one")
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            self.stdout.write(f"TOTP is on for {username}: logins need a one-time code")
            return
        devices.filter(confirmed=False).delete()
        device = TOTPDevice.objects.create(user=user, name="default", confirmed=False)
        self.stdout.write(device.config_url)
