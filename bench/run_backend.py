"""Run every scenario on the database DATABASE_URL names, and write the figures as JSON.

Started by `python -m bench`, once per backend, because Django reads DATABASE_URL at import.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench.options import add_workload_arguments, scenarios_from, workload_from
from bench.progress import say


def database_info() -> dict:
    """Return the server's version and the settings that decide commit cost."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            info = {}
            for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method",
                         "shared_buffers"):
                cursor.execute(f"SHOW {name}")
                info[name] = cursor.fetchone()[0]
            info["pool"] = "pool" in connection.settings_dict.get("OPTIONS", {})
            return {"vendor": "postgresql", "version": info.pop("server_version"), **info}
        cursor.execute("SELECT sqlite_version()")
        version = cursor.fetchone()[0]
        cursor.execute("PRAGMA journal_mode")
        journal = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(cursor.fetchone()[0])
    return {"vendor": "sqlite", "version": version, "journal_mode": journal,
            "synchronous": synchronous}


def event_count() -> int:
    """Return the number of rows in event_store."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM event_store")
        return cursor.fetchone()[0]


def measure(workload, scenarios: list[str], profile_dir: Path | None = None) -> dict:
    """Migrate the empty database, then run the scenarios in order and return their figures."""
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)

    from bench.scenarios import bulk, concurrent, load, partitions, reads, rebuild, search, service

    steps = {
        "service": (service, "service commands, each followed by a raw one-row insert"),
        "concurrent": (concurrent, f"{workload.clients} concurrent clients: service, then raw"),
        "bulk": (bulk, "bulk appends, each followed by the same rows raw"),
        "load": (load, "aggregate loads"),
        "rebuild": (rebuild, "rebuild of every read model from the log"),
        "reads": (reads, "patient reads from the read models"),
        "partitions": (partitions, "stream loads with 1 and with many monthly partitions"),
        "search": (search, f"patient search over {workload.search_patients:,} patients"),
    }
    figures: dict = {}
    seconds: dict = {}
    for name in scenarios:
        module, what = steps[name]
        say(f"  {what} ...")
        started = time.perf_counter()
        figures |= profiled(module.run, workload, profile_dir / f"{name}.prof") if profile_dir \
            else module.run(workload)
        seconds[name] = round(time.perf_counter() - started, 2)
    return {
        "figures": figures,
        "scenario_seconds": seconds,
        "database": database_info(),
        "settings": {
            "DEBUG": settings.DEBUG,
            "MEDFLOW_SNAPSHOT_EVERY": settings.MEDFLOW_SNAPSHOT_EVERY,
            # Aggregates go through the cache: Redis when REDIS_URL is set, else in-process.
            "cache": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1],
        },
        "event_store_rows": event_count(),
    }


def profiled(func, workload, path: Path) -> dict:
    """Run one scenario under cProfile and keep its stats (its figures then include the overhead)."""
    import cProfile

    profiler = cProfile.Profile()
    result = profiler.runcall(func, workload)
    path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(path)
    say(f"  profile: {path}")
    return result


def main() -> None:
    """Parse the workload, set Django up on DATABASE_URL, measure, and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.run_backend")
    add_workload_arguments(parser)
    parser.add_argument("--output", type=Path, help="write the JSON here instead of stdout")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run each scenario under cProfile, stats into DIR/<scenario>.prof")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("DATABASE_URL must name the (fresh) database to measure")
    workload = workload_from(args)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medflow.settings")
    import django

    django.setup()
    started = time.perf_counter()
    result = measure(workload, scenarios_from(args), args.profile)
    result["seconds"] = round(time.perf_counter() - started, 2)
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
