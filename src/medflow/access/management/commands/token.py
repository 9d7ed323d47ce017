from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from medflow.access import tokens


class Command(BaseCommand):
    help = "API tokens. `create USERNAME` prints a new token (shown once); `revoke PREFIX`."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token and print it once")
        create.add_argument("username")
        create.add_argument("--days", type=int, default=None, help="lifetime in days")
        create.add_argument("--name", default="", help="what the token is for")
        revoke = sub.add_parser("revoke", help="revoke tokens by their first 12 characters")
        revoke.add_argument("prefix")

    def handle(self, *args, action, **options):
        if action == "create":
            user = get_user_model().objects.filter(username=options["username"]).first()
            if user is None:
                raise CommandError(f"no user {options['username']!r}")
            if options["days"] is not None and options["days"] < 1:
                raise CommandError("--days must be at least 1")
            token, raw = tokens.create_token(user, name=options["name"], days=options["days"])
            self.stderr.write(f"token for {user.username}, expires {token.expires_at:%Y-%m-%d}:")
            self.stdout.write(raw)
        else:
            count = tokens.revoke(options["prefix"])
            if not count:
                raise CommandError(f"no live token starts with {options['prefix']!r}")
            self.stdout.write(f"revoked {count} token(s)")
