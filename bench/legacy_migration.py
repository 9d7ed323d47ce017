"""Legacy migration throughput: load a Synthea export, migrate it through the services, validate.

    .venv/bin/python bench/legacy_migration.py [--scale N] [--backend sqlite|postgresql|both]
        [--batch-size N] [--workers N] [--per-row] [--profile]

Each backend runs in a child process on a fresh database (SQLite under $MEDFLOW_VAR_DIR/bench,
PostgreSQL at $MEDFLOW_BENCH_LEGACY_POSTGRES_URL, default .../mf_legacy_bench, dropped and
recreated). `--scale N` loads N copies of every patient with new ids. `--workers N` shares the
steps by patient among N processes, as `medflow legacy migrate --workers N` does (default 1).
`--per-row` migrates through the application services row by row instead of the batched path.
The time spent in the inline projections (inline.dispatch) is reported apart (with one worker:
the workers' own are not added up). Figures are written to
bench/results/legacy-<time>-<backend>-x<scale>.json and printed. `--profile` runs the migration
under cProfile (stats in $MEDFLOW_VAR_DIR/bench/legacy-<time>-<backend>-x<scale>.prof; the
figures then include the profiler's overhead). The child runs with DEBUG off, as production does
(DEBUG keeps a log of every query), with a throwaway secret and master key.
"""

import argparse
import base64
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared/data/synthea-ca/csv"
RESULTS = ROOT / "bench/results"
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/mf_legacy_bench"


def child(path: Path, scale: int, batch_size: int, per_row: bool = False,
          profile: Path | None = None, workers: int = 1) -> dict:
    """Run in a process whose DATABASE_URL is the fresh database: measure and return figures."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medflow.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from medflow.eventstore import batch
    from medflow.eventstore.handlers import inline
    from medflow.legacy import models as m
    from medflow.legacy.migrate import Migrator, migrate
    from medflow.legacy.synthea import load_synthea
    from medflow.legacy.validate import validate

    # Time the inline projections apart: they run inside the migration, but are not its own
    # work (the migration hands each batch's events to inline.dispatch once).
    projections = [0.0]
    dispatch = inline.dispatch

    def timed_dispatch(events):
        begun = time.perf_counter()
        try:
            dispatch(events)
        finally:
            projections[0] += time.perf_counter() - begun

    batch.inline.dispatch = timed_dispatch
    # Each legacy table's share: seconds and events (the migration runs table by table).
    tables: dict[str, dict] = {}
    migrate_table = Migrator._table

    def timed_table(self, table, *args):
        begun, events = time.perf_counter(), self.report.events
        try:
            migrate_table(self, table, *args)
        finally:
            took = time.perf_counter() - begun
            tables[table] = {"seconds": round(took, 3), "events": self.report.events - events,
                             "events_per_s": round((self.report.events - events) / took, 1)}

    Migrator._table = timed_table
    # With workers, the steps by patient run together in them: timed as one.
    in_workers = Migrator._tables_in_workers

    def timed_in_workers(self, steps):
        begun, events = time.perf_counter(), self.report.events
        try:
            in_workers(self, steps)
        finally:
            took = time.perf_counter() - begun
            tables[f"{steps[0][0]} ... {steps[-1][0]} ({workers} workers)"] = {
                "seconds": round(took, 3), "events": self.report.events - events,
                "events_per_s": round((self.report.events - events) / took, 1)}

    Migrator._tables_in_workers = timed_in_workers
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    summary = load_synthea(path, scale=scale)
    load_s = time.perf_counter() - started
    rows = sum(model.objects.count() for model in m.LEGACY_MODELS)
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    report = migrate(batch_size=batch_size, batched=not per_row, workers=workers)
    migrate_s = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profile.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile)
    batch.inline.dispatch = dispatch
    started = time.perf_counter()
    checked = validate()
    validate_s = time.perf_counter() - started
    migrated_rows = sum(report.migrated.values())
    return {
        "backend": connection.vendor, "scale": scale, "batch_size": batch_size,
        "workers": workers,
        "legacy_rows": rows, "loaded": dict(summary.counts),
        "load_seconds": round(load_s, 3), "load_rows_per_s": round(rows / load_s, 1),
        "migrated_rows": migrated_rows, "events": report.events,
        "migrate_seconds": round(migrate_s, 3),
        "legacy_rows_per_s": round(migrated_rows / migrate_s, 1),
        "events_per_s": round(report.events / migrate_s, 1),
        "path": "per-row services" if per_row else "batched",
        # Only the batched path hands its events to inline.dispatch as one list per batch, and
        # only this process's dispatches are timed.
        "projection_seconds": None if per_row or workers > 1 else round(projections[0], 3),
        "events_per_s_without_projections": None if per_row or workers > 1 else round(
            report.events / (migrate_s - projections[0]), 1),
        "tables": tables,
        "refused": len(report.refusals), "validate_seconds": round(validate_s, 3),
        "mismatches": len(checked.mismatches), "validation_ok": checked.ok,
        "target_events_per_s": 10000,
    }


def var_dir() -> Path:
    return Path(os.environ.get("MEDFLOW_VAR_DIR", ROOT / "var"))


def database(backend: str) -> str | None:
    sys.path.insert(0, str(ROOT))
    from bench.databases import fresh_postgres, fresh_sqlite

    if backend == "sqlite":
        return fresh_sqlite(var_dir(), "legacy-bench.sqlite3").url
    target = fresh_postgres(os.environ.get("MEDFLOW_BENCH_LEGACY_POSTGRES_URL", DEFAULT_PG))
    if target.skipped:
        print(f"postgresql skipped: {target.skipped}")
    return target.url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for the steps by patient (medflow legacy migrate --workers)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--path", type=Path, default=SAMPLE, help="Synthea CSV folder")
    parser.add_argument("--per-row", action="store_true",
                        help="migrate through the services row by row (the reference path)")
    parser.add_argument("--profile", action="store_true",
                        help="run the migration under cProfile (stats under $MEDFLOW_VAR_DIR/bench)")
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.path, args.scale, args.batch_size, args.per_row,
                               args.profile_to, args.workers)))
        return 0
    if not args.path.is_dir():
        print(f"no Synthea export at {args.path}", file=sys.stderr)
        return 2
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    # Production refuses to start without a master key (per-patient data keys): a throwaway one.
    master_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    failed = 0
    for backend in backends:
        url = database(backend)
        if url is None:
            continue
        env = {**os.environ, "DATABASE_URL": url, "MEDFLOW_DB_POOL": "0", "DEBUG": "0",
               "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-not-a-secret",
               "MEDFLOW_MASTER_KEY": os.environ.get("MEDFLOW_MASTER_KEY") or master_key}
        kind = "-per-row" if args.per_row else f"-w{args.workers}" if args.workers > 1 else ""
        name = f"legacy-{stamp}-{backend}-x{args.scale}{kind}"
        profile = var_dir() / "bench" / f"{name}.prof" if args.profile else None
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--scale", str(args.scale), "--batch-size",
             str(args.batch_size), "--workers", str(args.workers), "--path", str(args.path),
             *(["--per-row"] if args.per_row else []),
             *(["--profile-to", str(profile)] if profile else [])],
            env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{backend}: failed\n{done.stderr[-3000:]}", file=sys.stderr)
            failed += 1
            continue
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        figures |= {"utc_time": stamp, "python": platform.python_version(),
                    "machine": platform.machine(), "cpus": os.cpu_count()}
        out = RESULTS / f"{name}.json"
        out.write_text(json.dumps(figures, indent=1) + "\n")
        print(f"{backend:10} scale {args.scale:>3}: {figures['legacy_rows']} legacy rows loaded in"
              f" {figures['load_seconds']} s; {figures['migrated_rows']} rows -> {figures['events']}"
              f" events in {figures['migrate_seconds']} s = {figures['legacy_rows_per_s']} rows/s,"
              f" {figures['events_per_s']} events/s (target 10000); refused {figures['refused']},"
              f" mismatches {figures['mismatches']}  -> {out.relative_to(ROOT)}")
        if figures["projection_seconds"] is not None:
            print(f"{'':10} of which inline projections {figures['projection_seconds']} s;"
                  f" without them {figures['events_per_s_without_projections']} events/s")
        if profile:
            print(f"{'':10} profile: {profile}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
