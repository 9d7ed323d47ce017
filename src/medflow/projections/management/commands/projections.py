import contextlib
import signal

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from medflow.eventstore import store
from medflow.projections import rebuild as rebuilding
from medflow.projections import runner
from medflow.projections.catalog import all_projections, get


class Command(BaseCommand):
    help = (
        "Projections. `run [NAME] [--once]` keeps catch-up projections current (a worker);"
        " `rebuild NAME|--all` rebuilds read models from the log beside the live ones and swaps;"
        " `status` prints position, lag and last error."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", help="run catch-up projections (forever, or --once)")
        run.add_argument("name", nargs="?", help="one projection (default: all catch-up ones)")
        run.add_argument("--once", action="store_true", help="catch up to the head, then exit")
        run.add_argument("--batch", type=int, default=500)
        rebuild = sub.add_parser("rebuild", help="rebuild read models from the whole log")
        rebuild.add_argument("name", nargs="?")
        rebuild.add_argument("--all", action="store_true")
        rebuild.add_argument("--batch", type=int, default=5000,
                             help="events per page (one transaction and checkpoint each)")
        rebuild.add_argument("--restart", action="store_true",
                             help="discard a half-done rebuild instead of resuming it")
        sub.add_parser("status", help="position, lag and last error of each projection")

    def handle(self, *args, action, **options):
        getattr(self, f"do_{action}")(options)

    def _pick(self, name, every, kinds):
        try:
            if name:
                return [get(name)]
        except KeyError as exc:
            raise CommandError(exc.args[0]) from exc
        if not every:
            raise CommandError("name a projection or pass --all")
        return [p for p in all_projections().values() if p.kind in kinds]

    def do_run(self, options):
        chosen = self._pick(options["name"], True, {"catch-up"})
        if any(p.kind != "catch-up" for p in chosen):
            raise CommandError("inline projections run with the append; only catch-up ones run here")
        if options["once"]:
            for projection in chosen:
                count = runner.catch_up(projection, options["batch"])
                self.stdout.write(f"{projection.name}: applied {count} event(s)")
            return
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        self.stdout.write(f"running {', '.join(p.name for p in chosen)}; Ctrl-C to stop")
        with contextlib.suppress(KeyboardInterrupt):
            runner.run_forever(chosen, options["batch"], stop=lambda: bool(stopping))

    def do_rebuild(self, options):
        chosen = self._pick(options["name"], options["all"], {"inline", "catch-up"})
        # One pass over the log feeds every chosen projection's shadow tables.
        with tqdm(total=store.last_position(), desc=", ".join(p.name for p in chosen), unit="ev",
                  disable=None if self.stdout.isatty() else True) as bar:
            counts = rebuilding.rebuild_many(chosen, batch=options["batch"],
                                             restart=options["restart"], progress=bar.update)
        for projection in chosen:
            self.stdout.write(f"{projection.name}: rebuilt from {counts[projection.name]} event(s)")

    def do_status(self, options):
        self.stdout.write(f"{'projection':<22}{'kind':<10}{'position':>10}{'lag':>8}{'lag s':>9}  error")
        for row in runner.status():
            error = row.last_error.strip().splitlines()[-1] if row.last_error.strip() else ""
            self.stdout.write(
                f"{row.name:<22}{row.kind:<10}{row.position:>10}{row.lag_events:>8}"
                f"{row.lag_seconds:>9.1f}  {error}"
            )
