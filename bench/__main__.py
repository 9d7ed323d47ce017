"""Benchmark MedFlow on SQLite and PostgreSQL, beside raw driver floors and the eventsourcing
library: `python -m bench [--quick]`.

Each backend runs in processes of their own on fresh databases (see bench/README.md).
"""

import argparse
import base64
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import databases, report
from bench.machine import REPO, git, load_average, machine
from bench.options import add_workload_arguments, scenarios_from, workload_from
from bench.progress import say

BACKENDS = ("sqlite", "postgresql")
THROWAWAY_MASTER_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
# MedFlow's scenarios run in phases, each on a fresh database: the append scenarios write
# streams no projection could replay (bulk rows without a registration), so the rebuild and the
# reads get a log of their own; the partitions scenario reshapes event_store, and the search
# fills a read model of its own. Each phase names the backends it runs on.
PHASES = (
    ("appends", ("service", "concurrent", "bulk", "load"), BACKENDS),
    ("log", ("rebuild", "reads"), BACKENDS),
    # SQLite has no partitions.
    ("partitions", ("partitions",), ("postgresql",)),
    ("search", ("search",), BACKENDS),
)
# The scenarios the eventsourcing peer has a counterpart for.
PEER_SCENARIOS = ("service", "concurrent", "bulk", "load", "rebuild", "reads")


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
    parser.add_argument("--no-peer", action="store_true",
                        help="skip the eventsourcing library's figures")
    parser.add_argument("--profile", action="store_true",
                        help="run MedFlow's scenarios under cProfile ($MEDFLOW_VAR_DIR/bench/profile-*/);"
                             " the figures then include the profiler's overhead")
    return parser.parse_args()


def var_dir() -> Path:
    """Return the directory the SQLite files go under."""
    return Path(os.environ.get("MEDFLOW_VAR_DIR", REPO / "var"))


def fresh(backend: str) -> databases.Target:
    """Prepare a fresh MedFlow database for `backend`."""
    if backend == "sqlite":
        return databases.fresh_sqlite(var_dir())
    return databases.fresh_postgres(databases.postgres_url())


def fresh_peer(backend: str) -> tuple[databases.Target, str]:
    """Prepare a fresh database for the peer; return it and the --db argument that names it."""
    if backend == "sqlite":
        target = databases.fresh_sqlite(var_dir(), "es-bench.sqlite3")
        return target, databases.sqlite_path(target.url)
    target = databases.fresh_postgres(databases.peer_postgres_url(databases.postgres_url()))
    return target, target.url


def child(module: str, args: list[str], env: dict) -> dict | None:
    """Run `python -m module args --output FILE`; return its JSON, or None when it failed."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        done = subprocess.run(
            [sys.executable, "-m", module, *args, "--output", out.name],
            cwd=REPO, env=env, check=False,
        )
        if done.returncode != 0:
            say(f"   {module} failed (exit status {done.returncode})")
            return None
        return json.loads(Path(out.name).read_text())


def run_backend(backend: str, args, workload_args: list[str], scenarios: list[str],
                profile_dir: Path | None) -> tuple[dict | None, str | None]:
    """Measure MedFlow (two phases) and the peer on one backend; return (result, skip reason)."""
    base_env = {
        **os.environ,
        # Measure what production runs: DEBUG off (no query log), so a throwaway key.
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-not-a-secret",
        # Production refuses to start without a master key (per-patient data keys): a throwaway
        # one, the same for every process of the run.
        "MEDFLOW_MASTER_KEY": os.environ.get("MEDFLOW_MASTER_KEY") or THROWAWAY_MASTER_KEY,
    }
    merged: dict = {"figures": {}, "scenario_seconds": {}, "event_store_rows": {}}
    for phase_name, phase, backends in PHASES:
        chosen = [name for name in phase if name in scenarios]
        if not chosen or backend not in backends:
            continue
        target = fresh(backend)
        if target.skipped:
            return None, target.skipped
        say(f"== {backend}: {', '.join(chosen)} on {databases.redacted(target.url)}")
        extra = ["--profile", str(profile_dir / backend)] if profile_dir else []
        result = child("bench.run_backend", [*workload_args, "--only", ",".join(chosen), *extra],
                       {**base_env, "DATABASE_URL": target.url})
        if result is None:
            # Keep the other phases' figures: a long run should not lose them all to one failure.
            merged.setdefault("failed_phases", []).append(phase_name)
            continue
        merged["database_url"] = databases.redacted(target.url)
        merged["figures"] |= result.pop("figures")
        merged["scenario_seconds"] |= result.pop("scenario_seconds")
        merged["event_store_rows"][phase_name] = result.pop("event_store_rows")
        merged |= result
    if "database" not in merged:
        if merged.get("failed_phases"):
            return None, None
        return None, f"no scenario of {', '.join(scenarios)} runs on {backend}"
    peer_scenarios = [name for name in scenarios if name in PEER_SCENARIOS]
    if not args.no_peer and peer_scenarios:
        target, db = fresh_peer(backend)
        say(f"== {backend}: eventsourcing peer on {databases.redacted(target.url)}")
        peer = child("bench.peers", [*workload_args, "--only", ",".join(peer_scenarios),
                                     "--backend", backend, "--db", db], base_env)
        # A failed peer leaves MedFlow's figures standing; the results say it failed.
        merged["peer"] = {**(peer or {"failed": True}), "database_url": databases.redacted(target.url)}
    return merged, None


def main() -> int:
    """Run every backend, print the table, write the results; return the exit status."""
    args = parse_args()
    workload = workload_from(args)
    scenarios = scenarios_from(args)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    common = {
        "utc_time": started.isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, "-m", "bench", *sys.argv[1:]]),
        "git": git(),
        "workload": workload.as_dict(),
        "scenarios": scenarios,
    }
    host = machine()
    profile_dir = var_dir() / "bench" / f"profile-{stamp}" if args.profile else None
    runs, skipped, failed = [], {}, []
    for backend in BACKENDS if args.backend == "all" else (args.backend,):
        result, skip = run_backend(backend, args, workload.as_args(), scenarios, profile_dir)
        if skip:
            say(f"== {backend}: skipped ({skip})")
            skipped[backend] = skip
            continue
        if result is None:
            failed.append(backend)
            continue
        failed += [f"{backend}: {phase}" for phase in result.get("failed_phases", [])]
        server = {"postgresql_server": result["database"]["version"]} if (
            backend == "postgresql") else {}
        runs.append({"backend": backend, **common, "machine": {**host, **server}, **result})
    host["load_average_at_end"] = load_average()
    for run in runs:
        run["machine"]["load_average_at_end"] = host["load_average_at_end"]
    if runs:
        print(report.table(runs, workload.as_dict()))
        summary = {**common, "machine": host, "skipped": skipped, "failed": failed}
        for path in report.write(stamp, runs, summary):
            say(f"wrote {path.relative_to(REPO)}")
    return 1 if failed or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
