"""Fresh, empty databases for each backend run; nothing else on the server is touched."""

import os
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/medflow_bench"
# The eventsourcing peer's database, on the same server as MedFlow's.
PEER_DATABASE = "es_bench"
# Recreating drops the database, so only one whose name says it is a benchmark's.
NAME_MARKER = "bench"


@dataclass(frozen=True)
class Target:
    """A backend to run on: its name, its DATABASE_URL, or why it is skipped."""

    backend: str
    url: str | None
    skipped: str | None = None


def fresh_sqlite(var_dir: Path, filename: str = "medflow-bench.sqlite3") -> Target:
    """Delete a benchmark SQLite file (and its WAL) under var_dir/bench and return its URL."""
    bench_dir = var_dir / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    path = bench_dir / filename
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Target("sqlite", f"sqlite:///{path}")


def postgres_url() -> str:
    """Return the benchmark's PostgreSQL URL (MEDFLOW_BENCH_POSTGRES_URL or the default)."""
    return os.environ.get("MEDFLOW_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def peer_postgres_url(url: str) -> str:
    """Return the URL of the peer's database: MEDFLOW_BENCH_PEER_POSTGRES_URL, or es_bench on the
    server of `url`."""
    if os.environ.get("MEDFLOW_BENCH_PEER_POSTGRES_URL"):
        return os.environ["MEDFLOW_BENCH_PEER_POSTGRES_URL"]
    params = {**conninfo_to_dict(url), "dbname": PEER_DATABASE}
    auth = params.get("user", "") + (f":{params['password']}" if params.get("password") else "")
    host = f"{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}"
    return f"postgres://{auth}@{host}/{PEER_DATABASE}" if auth else f"postgres://{host}/{PEER_DATABASE}"


def sqlite_path(url: str) -> str:
    """Return the file of a sqlite:/// URL."""
    return url.removeprefix("sqlite:///")


def fresh_postgres(url: str) -> Target:
    """Drop and recreate the benchmark database; skip PostgreSQL when the server is unreachable."""
    params = conninfo_to_dict(url)
    name = params.get("dbname") or ""
    if NAME_MARKER not in name:
        raise SystemExit(
            f"refusing to drop PostgreSQL database {name!r}: the benchmark recreates its database,"
            f" so its name must contain {NAME_MARKER!r} (set MEDFLOW_BENCH_POSTGRES_URL)"
        )
    server = {**params, "dbname": "postgres", "connect_timeout": 3}
    try:
        with psycopg.connect(**server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        return Target("postgresql", None, skipped=f"unreachable: {_first_line(exc)}")
    except psycopg.Error as exc:
        raise SystemExit(
            f"cannot recreate PostgreSQL database {name!r}: {_first_line(exc)}"
        ) from exc
    return Target("postgresql", url)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def redacted(url: str) -> str:
    """Return the URL without its password, for the results file."""
    params = conninfo_to_dict(url) if url.startswith(("postgres://", "postgresql://")) else None
    if not params or "password" not in params:
        return url
    return url.replace(f":{params['password']}@", ":***@")
