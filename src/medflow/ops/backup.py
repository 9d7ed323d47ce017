"""Back up and restore the whole database.

PostgreSQL: pg_dump / pg_restore in the custom format, run with the connection settings of
DATABASES["default"] (password passed through PGPASSWORD, never on the command line).
SQLite: the online backup API (sqlite3.Connection.backup), consistent while others write.
"""

import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import connection, connections


class BackupError(Exception):
    pass


def _pg_args(db: dict) -> tuple[list[str], dict[str, str]]:
    args = []
    if db.get("HOST"):
        args += ["--host", db["HOST"]]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", db["USER"]]
    env = {**os.environ}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    sslmode = (db.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = sslmode
    return args, env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found on PATH (install the PostgreSQL client tools)")
    return found


def _run(cmd: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.strip()[-2000:]
        raise BackupError(f"{Path(cmd[0]).name} failed ({result.returncode}): {detail}")


def _settings() -> dict:
    return connection.settings_dict


def backup(path: str | os.PathLike) -> Path:
    """Write a consistent copy of the whole database to `path`; return it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    db = _settings()
    if connection.vendor == "postgresql":
        args, env = _pg_args(db)
        _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file",
              str(target), *args, db["NAME"]], env)
    elif connection.vendor == "sqlite":
        source = sqlite3.connect(db["NAME"])
        partial = target.with_name(target.name + ".partial")
        try:
            dest = sqlite3.connect(partial)
            try:
                source.backup(dest)
            finally:
                dest.close()
        finally:
            source.close()
        partial.replace(target)
    else:
        raise BackupError(f"no backup for {connection.vendor}")
    return target


def restore(path: str | os.PathLike) -> None:
    """Replace the database's contents with the backup at `path` (stop the application first)."""
    source_path = Path(path)
    if not source_path.is_file():
        raise BackupError(f"no backup at {source_path}")
    db = _settings()
    vendor = connection.vendor
    schema = None
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_schema()")
            schema = cursor.fetchone()[0]
    connections.close_all()
    if vendor == "postgresql":
        _restore_postgres(db, schema, source_path)
    elif vendor == "sqlite":
        source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
        try:
            # Read the backup before touching the database: a damaged file fails here.
            source.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            dest = sqlite3.connect(db["NAME"], timeout=30)
            try:
                source.backup(dest)
            finally:
                dest.close()
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"cannot restore {source_path}: {exc}") from exc
        finally:
            source.close()
    else:
        raise BackupError(f"no restore for {vendor}")
    _forget_cached_state()


def _restore_postgres(db: dict, schema: str, source_path: Path) -> None:
    """Empty the schema and load the backup into it, all in one transaction: a failed restore
    leaves the database as it was. (pg_restore --clean cannot drop partitioned tables' inherited
    constraints, hence a fresh schema.) The archive is turned into SQL first, so that a damaged
    archive fails before anything is touched."""
    args, env = _pg_args(db)
    quoted = '"' + schema.replace('"', '""') + '"'
    with tempfile.TemporaryDirectory(prefix="medflow-restore-") as work:
        script = Path(work) / "restore.sql"
        _run([_tool("pg_restore"), "--no-owner", "--no-privileges", "--file", str(script),
              str(source_path)], env)
        _run([_tool("psql"), "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1",
              "--single-transaction", *args, "--dbname", db["NAME"],
              "--command", f"DROP SCHEMA IF EXISTS {quoted} CASCADE",
              "--command", f"CREATE SCHEMA {quoted}",
              "--file", str(script)], env)


def _forget_cached_state() -> None:
    """Drop MedFlow's cache entries: they may describe writes the restore has undone."""
    from django.core.cache import cache as django_cache

    from medflow.eventstore.cache import cache

    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    try:
        client = getattr(getattr(django_cache, "_cache", None), "get_client", None)
        if prefix and client is not None:
            redis = client(write=True)
            for key in redis.scan_iter(match=f"{prefix}:*"):
                redis.delete(key)
        else:
            django_cache.clear()
    except Exception:  # the cache never blocks a restore; stale entries are re-checked on load
        pass
    cache.reset()
