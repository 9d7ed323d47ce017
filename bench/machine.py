"""Describe where and from what code a run happened."""

import importlib.util
import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """Return the CPU model named in /proc/cpuinfo, or the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    """Return the machine's total memory in GiB, when /proc/meminfo tells."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def nproc() -> int | None:
    """Return the CPUs this process may run on, as nproc(1) counts them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def load_average() -> list[float] | None:
    """Return the 1, 5 and 15-minute load averages (other work on the machine skews figures)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict:
    """Return the machine's description: CPUs, memory, OS, Python and SQLite versions."""
    return {
        "nproc": nproc(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": memory_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": load_average(),
    }


def _git(*args: str, cwd: Path = REPO) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _checkout(path: Path) -> dict:
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=path)
    return {
        "path": _git("rev-parse", "--show-toplevel", cwd=path),
        "commit": _git("rev-parse", "HEAD", cwd=path),
        "dirty": bool(status) if status is not None else None,
    }


def medflow_source() -> Path:
    """Return the directory of the medflow package the children will import (PYTHONPATH first)."""
    spec = importlib.util.find_spec("medflow")
    if spec is None or spec.origin is None:
        return REPO / "src" / "medflow"
    return Path(spec.origin).parent


def git() -> dict:
    """Return the commit measured (the checkout medflow is imported from) and whether its tracked
    files differ from it; `bench` is the same for the harness itself."""
    code = _checkout(medflow_source())
    return {**code, "bench": _checkout(REPO)}
