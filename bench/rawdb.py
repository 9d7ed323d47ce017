"""Plain driver connections (psycopg 3 or sqlite3) for the raw baselines: no Django, no store.

A raw figure is the floor under a MedFlow figure: the same rows in the same tables, through the
bare driver, with the same durability settings (SQLite: WAL, synchronous=FULL), so that the ratio
of the two is what MedFlow's code costs.
"""

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.string import TextLoader


class RawDB:
    """One connection; `%s` placeholders work on both drivers."""

    def __init__(self, vendor: str, conn: Any) -> None:
        self.vendor = vendor
        self.conn = conn

    @classmethod
    def connect(cls, settings: dict) -> "RawDB":
        """Open a connection to the database Django's settings dict names."""
        if settings["ENGINE"].endswith("sqlite3"):
            conn = sqlite3.connect(settings["NAME"], isolation_level=None, timeout=30,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            return cls("sqlite", conn)
        conn = psycopg.connect(
            dbname=settings["NAME"], user=settings.get("USER") or None,
            password=settings.get("PASSWORD") or None, host=settings.get("HOST") or None,
            port=settings.get("PORT") or None, autocommit=True,
        )
        # Keep JSON as text, as Django does: the raw figures decode nothing.
        for name in ("json", "jsonb"):
            conn.adapters.register_loader(name, TextLoader)
        return cls("postgresql", conn)

    @classmethod
    def from_django(cls) -> "RawDB":
        """Open a connection of its own to Django's default database."""
        from django.db import connection

        return cls.connect(connection.settings_dict)

    def _sql(self, sql: str) -> str:
        return sql.replace("%s", "?") if self.vendor == "sqlite" else sql

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction (SQLite: BEGIN IMMEDIATE, as MedFlow does)."""
        if self.vendor == "postgresql":
            with self.conn.transaction():
                yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement (autocommit outside `transaction()`)."""
        if self.vendor == "postgresql":
            self.conn.execute(sql, params)
        else:
            self.conn.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row (psycopg pipelines them)."""
        if self.vendor == "postgresql":
            with self.conn.cursor() as cursor:
                cursor.executemany(sql, rows)
        else:
            self.conn.executemany(self._sql(sql), rows)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a query and return every row."""
        if self.vendor == "postgresql":
            with self.conn.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        return self.conn.execute(self._sql(sql), params).fetchall()

    def fetchall_literal(self, sql: str) -> list[tuple]:
        """Run a query that has its values written in (no placeholders); return every row."""
        if self.vendor == "postgresql":
            with self.conn.cursor() as cursor:
                cursor.execute(sql)  # no parameters: `%` is left alone
                return cursor.fetchall()
        return self.conn.execute(sql).fetchall()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()
