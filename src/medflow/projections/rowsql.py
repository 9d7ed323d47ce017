"""Write one read-model row with one statement: the inline projections' hot path.

The ORM builds a model instance and compiles its SQL on every save, and Django's cursor makes the
server plan every statement anew. Here the SQL of each table is built once, values are encoded as
the ORM would store them (`bulk.Table`), and on PostgreSQL the statement goes through a binding
cursor, which the server prepares once it repeats; inside a command it travels with the command's
other row writes (`eventstore.combined`).
"""

from collections.abc import Callable
from typing import Any

from django.db import connection, models

from medflow.eventstore import combined
from medflow.projections.bulk import Row, Table, _q

_SQL: dict[tuple, str] = {}
_FIELDS: dict[tuple, dict[str, tuple[models.Field, Any]]] = {}


def _fields(table: Table) -> dict[str, tuple[models.Field, Any]]:
    """Return the table's fields and their encoders by attribute name (built once per table)."""
    key = (table.name, connection.vendor)
    if key not in _FIELDS:
        _FIELDS[key] = {f.attname: (f, enc)
                        for f, enc in zip(table.fields, table.encoders, strict=True)}
    return _FIELDS[key]


def _param(table: Table, attname: str) -> str:
    if attname in table.json_columns and connection.vendor == "postgresql":
        return "%s::jsonb"
    return "%s"


def insert_row(model: type[models.Model], row: Row) -> None:
    """Insert one new row (a dict by attribute name; missing columns take their default)."""
    table = Table.of(model)
    key = ("insert", table.name, connection.vendor)
    if key not in _SQL:
        _SQL[key] = (
            f"INSERT INTO {_q(table.name)} ({', '.join(_q(f.column) for f in table.fields)})"
            f" VALUES ({', '.join(_param(table, name) for name in table.attnames)})"
        )
    combined.send(table.name, _SQL[key], table.encode(row))


def update_row(
    model: type[models.Model], row: Row, *, where: dict[str, Any] | None = None,
    on_miss: Callable[[], None] | None = None,
) -> None:
    """Overwrite the columns `row` carries in the row of its primary key, if it also matches
    `where` (column equalities, e.g. the version it must be at); if no row matched, run
    `on_miss` (perhaps later, but before anything else reads or writes the database)."""
    where = where or {}
    table = Table.of(model)
    pk = table.pk.attname
    names = tuple(name for name in table.attnames if name in row and name != pk)
    conditions = tuple(sorted(where))
    key = ("update", table.name, connection.vendor, names, conditions)
    fields = _fields(table)
    if key not in _SQL:
        sets = ", ".join(f"{_q(fields[n][0].column)} = {_param(table, n)}" for n in names)
        tests = "".join(f" AND {_q(fields[n][0].column)} = %s" for n in conditions)
        _SQL[key] = (
            f"UPDATE {_q(table.name)} SET {sets} WHERE {_q(table.pk.column)} = %s{tests}"
        )
    params = [fields[n][1](row[n]) for n in names] + [table.pk_encoder(row[pk])]
    params += [fields[n][1](where[n]) for n in conditions]
    combined.send(table.name, _SQL[key], params, on_miss)
