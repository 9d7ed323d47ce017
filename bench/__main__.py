"""Benchmark the event store on SQLite and PostgreSQL: `python -m bench [--quick]`.

Each backend runs in a process of its own on a fresh database (see bench/README.md).
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import databases, report
from bench.machine import REPO, git, machine
from bench.options import add_workload_arguments, workload_from
from bench.progress import say

BACKENDS = ("sqlite", "postgresql")


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark MedFlow's event store and services."
    )
    add_workload_arguments(parser)
    parser.add_argument(
        "--backend", choices=[*BACKENDS, "all"], default="all",
        help="backend to measure (default: all; PostgreSQL only when reachable)",
    )
    return parser.parse_args()


def targets(choice: str) -> list[databases.Target]:
    """Prepare a fresh database for each backend asked for."""
    var_dir = Path(os.environ.get("MEDFLOW_VAR_DIR", REPO / "var"))
    chosen = []
    if choice in ("sqlite", "all"):
        chosen.append(databases.fresh_sqlite(var_dir))
    if choice in ("postgresql", "all"):
        chosen.append(databases.fresh_postgres(databases.postgres_url()))
    return chosen


def run_backend(target: databases.Target, workload_args: list[str]) -> dict | None:
    """Measure one backend in a child process; return its JSON, or None when it failed."""
    env = {
        **os.environ,
        "DATABASE_URL": target.url,
        # Measure what production runs: DEBUG off (no query log), so a throwaway key.
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-not-a-secret",
    }
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        done = subprocess.run(
            [sys.executable, "-m", "bench.run_backend", *workload_args, "--output", out.name],
            cwd=REPO, env=env, check=False,
        )
        if done.returncode != 0:
            say(f"== {target.backend}: failed (exit status {done.returncode})")
            return None
        return json.loads(Path(out.name).read_text())


def main() -> int:
    """Run every backend, print the table, write the results; return the exit status."""
    args = parse_args()
    workload = workload_from(args)
    started = datetime.now(UTC)
    common = {
        "utc_time": started.isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, "-m", "bench", *sys.argv[1:]]),
        "git": git(),
        "workload": workload.as_dict(),
    }
    host = machine()
    runs, skipped, failed = [], {}, []
    for target in targets(args.backend):
        if target.skipped:
            say(f"== {target.backend}: skipped ({target.skipped})")
            skipped[target.backend] = target.skipped
            continue
        say(f"== {target.backend}: {databases.redacted(target.url)}")
        result = run_backend(target, workload.as_args())
        if result is None:
            failed.append(target.backend)
            continue
        server = {"postgresql_server": result["database"]["version"]} if (
            target.backend == "postgresql") else {}
        runs.append({
            "backend": target.backend,
            "database_url": databases.redacted(target.url),
            **common,
            "machine": {**host, **server},
            **result,
        })
    if runs:
        print(report.table(runs, workload.as_dict()))
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        summary = {**common, "machine": host, "skipped": skipped, "failed": failed}
        for path in report.write(stamp, runs, summary):
            say(f"wrote {path.relative_to(REPO)}")
    return 1 if failed or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
