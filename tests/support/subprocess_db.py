"""Run `medflow` in a child process against the test database (for kill and crash tests)."""

import os
import subprocess
import sys

from django.db import connection


def database_url() -> str:
    """Return a DATABASE_URL naming the database this test process uses."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def medflow(*args: str, failpoint: str | None = None, timeout: float = 120):
    """Run `python -m medflow ARGS` on the test database; return the CompletedProcess."""
    env = {**os.environ, "DATABASE_URL": database_url(), "MEDFLOW_DB_POOL": "0"}
    if failpoint:
        env["MEDFLOW_FAILPOINT"] = failpoint
    return subprocess.run([sys.executable, "-m", "medflow", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
