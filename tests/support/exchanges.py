"""Lose prepared statements as psycopg does after a rollback (the `exchanges` fixture, in
tests/conftest.py, shows what each pipelined exchange sent)."""

from django.db import connection


def forget_prepared():
    """Drop every prepared statement of the connection, as psycopg does after a rollback."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")


