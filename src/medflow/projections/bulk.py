"""Write read-model rows in bulk: the batch paths of the projections fold a page of events into
plain row dicts (keyed by attribute name) and write each touched row once.

Values are encoded as Django would store them (so a row written here equals one the ORM writes,
byte for byte on SQLite), but without building model instances: on PostgreSQL new rows go in with
COPY, elsewhere with one multi-row INSERT per chunk; changed rows get one UPDATE each.
"""

import json
import operator
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any
from uuid import UUID

import orjson
from django.db import connection, models
from django.utils import timezone
from psycopg import postgres, pq
from psycopg.adapt import Dumper

from medflow.eventstore import combined
from medflow.eventstore.store import binding_cursor

Row = dict[str, Any]
Convert = Callable[[Any], Any]

# Keeps the parameters of one statement under SQLite's limit (32766).
CHUNK_PARAMS = 30_000
# Keys per `IN (...)` when loading rows.
LOAD_CHUNK = 2_000


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _same(value: Any) -> Any:
    return value


def _converter(field: models.Field, vendor: str) -> Convert:
    """Return a function that encodes a Python value for `field`'s column on this backend."""
    kind = field.get_internal_type()
    ops = connection.ops
    if kind == "UUIDField":
        if vendor == "postgresql":
            return _same
        return lambda v: None if v is None else (v if isinstance(v, UUID) else UUID(str(v))).hex
    if kind == "JSONField":
        if vendor == "postgresql" and field.encoder is None:
            # jsonb keeps no text: any faithful encoding stores the same value.
            return lambda v: None if v is None else orjson.dumps(v).decode()
        # SQLite keeps the text Django writes: encode exactly as JSONField does.
        return lambda v: None if v is None else json.dumps(v, cls=field.encoder)
    if kind in ("DateTimeField", "DateField") and vendor == "postgresql":
        return _same  # the server parses an ISO string as the ORM's value would be
    if kind == "DateTimeField":
        def to_datetime(v: Any) -> Any:
            if v is not None and not isinstance(v, datetime):
                v = field.to_python(v)
            return ops.adapt_datetimefield_value(v)

        return to_datetime
    if kind == "DateField":
        def to_date(v: Any) -> Any:
            if v is not None and (isinstance(v, datetime) or not isinstance(v, date)):
                v = field.to_python(v)
            return ops.adapt_datefield_value(v)

        return to_date
    if kind in ("CharField", "TextField", "IntegerField", "BigIntegerField", "SmallIntegerField",
                "BooleanField", "FloatField", "AutoField", "BigAutoField", "ForeignKey"):
        return _same
    return lambda v: field.get_db_prep_save(v, connection)


# How COPY sends a column's values in binary: the type the binary dumper writes, by Django's
# field type, and what brings a row dict's value to the Python type that dumper takes (the
# text COPY let the server parse strings). A table with any other column type is copied as text.
_BINARY_TYPES = {
    "UUIDField": "uuid", "CharField": "text", "TextField": "text", "EmailField": "text",
    "SlugField": "text", "URLField": "text", "IntegerField": "int4",
    "PositiveIntegerField": "int4", "AutoField": "int4", "BigIntegerField": "int8",
    "PositiveBigIntegerField": "int8", "BigAutoField": "int8", "SmallIntegerField": "int2",
    "PositiveSmallIntegerField": "int2", "SmallAutoField": "int2", "BooleanField": "bool",
    "FloatField": "float8", "DateTimeField": "timestamptz", "DateField": "date",
}


def _as_uuid(value: Any) -> Any:
    return value if value is None or isinstance(value, UUID) else UUID(str(value))


def _as_str(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else _as_text(value)


def _as_float(value: Any) -> Any:
    return value if value is None or isinstance(value, float) else float(value)


def _as_aware(value: Any) -> Any:
    """Return the value as an aware datetime; a naive one is UTC, the connection's time zone,
    in which the server read a naive text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    elif not isinstance(value, datetime):
        value = datetime.combine(value, datetime.min.time())
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _as_date(value: Any) -> Any:
    """Return the value as a date, as DateField.to_python makes it (an aware datetime's date
    in the default time zone)."""
    if value is None or type(value) is date:
        return value
    if isinstance(value, str):
        if len(value) == 10:
            return date.fromisoformat(value)
        value = datetime.fromisoformat(value)
    if timezone.is_aware(value):
        value = timezone.make_naive(value, timezone.get_default_timezone())
    return value.date()


_NONE = type(None)
_TZINFO = attrgetter("tzinfo")


def _aware_only(values: tuple) -> bool:
    return {type(v) for v in values} <= {datetime, _NONE} and None not in map(
        _TZINFO, filter(None, values))

# Per column type: what brings a value to the Python type the binary dumper takes, and a test
# that a whole column needs none of it (run at C speed over a page of rows, where calling the
# converter on every value costs a microsecond a row).
_BINARY_CONVERTERS: dict[str, tuple[Convert, Callable[[tuple], bool]]] = {
    "uuid": (_as_uuid, lambda values: set(map(type, values)) <= {UUID, _NONE}),
    "text": (_as_str, lambda values: set(map(type, values)) <= {str, _NONE}),
    "float8": (_as_float, lambda values: set(map(type, values)) <= {float, _NONE}),
    "timestamptz": (_as_aware, _aware_only),
    "date": (_as_date, lambda values: set(map(type, values)) <= {date, _NONE}),
}


def _plain_json(field: models.Field, vendor: str) -> bool:
    """Tell whether the field is JSON that orjson encodes (see _converter) on this backend."""
    return (vendor == "postgresql" and field.get_internal_type() == "JSONField"
            and field.encoder is None)


def _json_bytes(value: Any) -> bytes | None:
    return None if value is None else orjson.dumps(value)


class _JsonbFromText(Dumper):
    """Dump JSON text (the JSON columns' encoding here), or its UTF-8 bytes, as binary jsonb: a
    version byte, then the text."""

    format = pq.Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + (obj if isinstance(obj, bytes) else obj.encode())


class Table:
    """How to write rows of one model: its columns and their encoders."""

    _cache: dict[tuple[type[models.Model], str, str], "Table"] = {}

    def __init__(self, model: type[models.Model]) -> None:
        vendor = connection.vendor
        self.model = model
        self.name = model._meta.db_table
        self.pk = model._meta.pk
        # A surrogate auto id is left to the database, as the ORM's create() does.
        auto = isinstance(self.pk, models.AutoField)
        self.fields = [f for f in model._meta.concrete_fields if not (auto and f.primary_key)]
        self.attnames = [f.attname for f in self.fields]
        self.encoders = [_converter(f.target_field if f.is_relation else f, vendor)
                         for f in self.fields]
        self.pk_encoder = _converter(self.pk, vendor)
        # Only the columns whose values need encoding on this backend (most pass as they are).
        self._encoding = [(i, enc) for i, enc in enumerate(self.encoders) if enc is not _same]
        # COPY in binary takes JSON as bytes: orjson's own, not decoded to text and encoded back.
        self._binary_encoding = [
            (i, _json_bytes if _plain_json(self.fields[i], vendor) else enc)
            for i, enc in self._encoding
        ]
        # A row's values in column order, picked in C (a rebuild encodes a row per event).
        self._values = (operator.itemgetter(*self.attnames) if len(self.attnames) > 1
                        else lambda row, name=self.attnames[0]: (row[name],))
        self.json_columns = {f.attname for f in self.fields if f.get_internal_type() == "JSONField"}
        self.binary_types = self._binary_types() if vendor == "postgresql" else None
        self._converting = [(index, *_BINARY_CONVERTERS[kind])
                            for index, kind in enumerate(self.binary_types or ())
                            if kind in _BINARY_CONVERTERS]

    def _binary_types(self) -> list[str] | None:
        """Return the type of each column as COPY sends it in binary, or None when one has a
        type sent as text only."""
        types = []
        for field, encode in zip(self.fields, self.encoders, strict=True):
            target = field.target_field if field.is_relation else field
            kind = target.get_internal_type()
            if kind == "JSONField" and encode is not _same:
                types.append("jsonb")  # the encoder makes JSON text: _JsonbFromText sends it
            elif kind in _BINARY_TYPES:
                types.append(_BINARY_TYPES[kind])
            else:
                return None
        return types

    def encode_binary(self, rows: Sequence[Row]) -> list[list[Any]]:
        """Return the rows' column values as COPY sends them in binary (see `binary_types`)."""
        encoding = self._binary_encoding
        encoded = [self._encode(row, encoding) for row in rows]
        if not encoded:
            return encoded
        columns = list(zip(*encoded, strict=True))
        for index, convert, clean in self._converting:
            if not clean(columns[index]):
                for values in encoded:
                    values[index] = convert(values[index])
        return encoded

    @classmethod
    def of(cls, model: type[models.Model]) -> "Table":
        # Keyed by table name too: a rebuild points the model at its shadow table.
        key = (model, model._meta.db_table, connection.vendor)
        if key not in cls._cache:
            cls._cache[key] = cls(model)
        return cls._cache[key]

    def encode(self, row: Row) -> list[Any]:
        """Return the row's column values, encoded; a missing one takes the field's default."""
        return self._encode(row, self._encoding)

    def _encode(self, row: Row, encoding: list[tuple[int, Convert]]) -> list[Any]:
        try:
            values = list(self._values(row))
        except KeyError:
            values = [row[f.attname] if f.attname in row else f.get_default() for f in self.fields]
        for index, encode in encoding:
            values[index] = encode(values[index])
        return values


def insert_rows(model: type[models.Model], rows: Sequence[Row]) -> None:
    """Insert new rows (dicts by attribute name; missing columns take their default)."""
    if not rows:
        return
    table = Table.of(model)
    columns = ", ".join(_q(f.column) for f in table.fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            combined.flush()  # COPY passes no execute wrapper: send waiting row writes first
            raw = cursor.cursor  # the psycopg cursor under Django's wrapper
            if table.binary_types is None:
                with raw.copy(f"COPY {_q(table.name)} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(table.encode(row))
                return
            # Binary: the client dumps each value a few times faster than as text, and the
            # server reads it without parsing (a rebuild copies a timeline row per event).
            # Found by its oid (set_types): the Python type it is registered for is never used.
            raw.adapters.register_dumper(_JsonbFromText, _JsonbFromText)
            encoded = table.encode_binary(rows)
            with raw.copy(f"COPY {_q(table.name)} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(table.binary_types)
                for values in encoded:
                    copy.write_row(values)
            return
        width = len(table.fields)
        one = "(" + ", ".join(["%s"] * width) + ")"
        per_statement = max(1, CHUNK_PARAMS // width)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            params: list[Any] = []
            for row in chunk:
                params += table.encode(row)
            cursor.execute(
                f"INSERT INTO {_q(table.name)} ({columns}) VALUES "
                + ", ".join([one] * len(chunk)), params,
            )


def update_rows(model: type[models.Model], rows: Sequence[Row]) -> None:
    """Overwrite existing rows by primary key with every column the dicts carry."""
    if not rows:
        return
    table = Table.of(model)
    pk = table.pk.attname
    fields = {f.attname: (f, enc) for f, enc in zip(table.fields, table.encoders, strict=True)}
    json_param = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    by_columns: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        names = tuple(n for n in table.attnames if n in row and n != pk)
        by_columns.setdefault(names, []).append(row)
    if connection.vendor == "postgresql":
        for names, same in by_columns.items():
            _update_rows_pg(table, names, same)
        return
    with connection.cursor() as cursor:
        for names, same in by_columns.items():
            sets = ", ".join(
                f"{_q(fields[n][0].column)} = {json_param if n in table.json_columns else '%s'}"
                for n in names
            )
            cursor.executemany(
                f"UPDATE {_q(table.name)} SET {sets} WHERE {_q(table.pk.column)} = %s",
                [[fields[n][1](row[n]) for n in names] + [table.pk_encoder(row[pk])]
                 for row in same],
            )


def _update_rows_pg(table: Table, names: tuple[str, ...], rows: Sequence[Row]) -> None:
    """Overwrite the rows with one UPDATE ... FROM unnest(...), the values travelling as text
    arrays that the server casts to each column's type (an UPDATE per row costs a round of
    parsing, binding and executing each: 3 s of a profiled 10x legacy migration)."""
    fields = {f.attname: (f, enc) for f, enc in zip(table.fields, table.encoders, strict=True)}
    # The last write of a key wins, as it would row by row (one UPDATE changes a row once).
    latest = {row[table.pk.attname]: row for row in rows}
    keys = [table.pk_encoder(key) for key in latest]
    arrays, sets = [], []
    for index, name in enumerate(names):
        field, encode = fields[name]
        arrays.append([_as_text(encode(row[name])) for row in latest.values()])
        sets.append(f"{_q(field.column)} = x.c{index}::{field.db_type(connection)}")
    pk_type, pk = table.pk.db_type(connection), f"{_q(table.name)}.{_q(table.pk.column)}"
    columns = ", ".join(f"c{index}" for index in range(len(names)))
    with binding_cursor() as cursor:
        # The ANY condition makes the planner probe the key, whatever its statistics say.
        cursor.execute(
            f"UPDATE {_q(table.name)} SET {', '.join(sets)} FROM unnest(%b::{pk_type}[], "
            + ", ".join(["%b::text[]"] * len(names))
            + f") AS x (k, {columns}) WHERE {pk} = ANY(%b::{pk_type}[]) AND {pk} = x.k",
            [keys, *arrays, keys],
        )


def _as_text(value: Any) -> str | None:
    """Return the value as PostgreSQL reads it from text (for a cast to the column's type)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _plain_lookup(model: type[models.Model], column: str, filters: dict[str, Any]) -> bool:
    """Tell whether `_load_rows_pg` reads what the ORM would: keys of a uuid or integer column
    (a cast to varchar(n) would cut longer keys) and filters that are plain equalities."""
    fields = {f.attname: f for f in model._meta.concrete_fields}
    key = fields.get(column)
    if key is None or (key.target_field if key.is_relation else key).db_type(connection) not in (
            "uuid", "integer", "bigint"):
        return False
    return all(name in fields and isinstance(value, (int, str, UUID))
               for name, value in filters.items())


def _load_rows_pg(model: type[models.Model], column: str, keys: list[Any],
                  filters: dict[str, Any]) -> list[Row]:
    """load_rows on PostgreSQL: the keys travel as one array parameter of a prepared statement.

    The ORM writes `IN (%s, ...)` with a placeholder per key: 2,000 keys cost Django's compiler
    and psycopg's placeholder parser milliseconds a query, and the server a parse of the text
    (3.7 s of a profiled 10x legacy migration). Values come back as the ORM's would: through the
    fields' converters (JSON text parsed).
    """
    fields = model._meta.concrete_fields
    by_attname = {f.attname: f for f in fields}
    key_field = by_attname[column]  # _plain_lookup checked it: a uuid or integer column
    key_type = (key_field.target_field if key_field.is_relation else key_field).db_type(connection)
    where = [f"{_q(key_field.column)} = ANY(%s::{key_type}[])"]
    params: list[Any] = [keys]
    for name, value in filters.items():
        where.append(f"{_q(by_attname[name].column)} = %s")
        params.append(value)
    converters = [(index, found) for index, field in enumerate(fields)
                  if (found := field.get_db_converters(connection))]
    names = [f.attname for f in fields]
    with binding_cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(_q(f.column) for f in fields)} FROM {_q(model._meta.db_table)}"
            f" WHERE {' AND '.join(where)}", params,
        )
        rows = cursor.fetchall()
    found = []
    for row in rows:
        values = list(row)
        for index, field_converters in converters:
            for convert in field_converters:
                values[index] = convert(values[index], None, connection)
        found.append(dict(zip(names, values, strict=True)))
    return found


def load_rows(model: type[models.Model], column: str, keys: Iterable[Any],
              **filters: Any) -> list[Row]:
    """Return the rows (dicts by attribute name) whose `column` is one of `keys`."""
    keys = list(keys)
    if not keys:
        return []
    if connection.vendor == "postgresql" and _plain_lookup(model, column, filters):
        return _load_rows_pg(model, column, keys, filters)
    names = [f.attname for f in model._meta.concrete_fields]
    found: list[Row] = []
    for start in range(0, len(keys), LOAD_CHUNK):
        query = model.objects.filter(**{f"{column}__in": keys[start:start + LOAD_CHUNK]}, **filters)
        found += query.values(*names)
    return found


class Rows:
    """The rows of one table that a batch touches, by primary key: loaded once, folded in
    memory, then written once each (INSERT when new, UPDATE when they were stored)."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.pk = model._meta.pk.attname
        self.rows: dict[Any, Row | None] = {}
        self._stored: set[Any] = set()
        self._dirty: dict[Any, None] = {}  # keys to write, in first-touched order

    def load(self, keys: Iterable[Any]) -> None:
        """Read the stored rows of these keys that are not in memory yet."""
        missing = [key for key in set(keys) if key not in self.rows]
        if not missing:
            return
        for key in missing:
            self.rows[key] = None
        for row in load_rows(self.model, self.pk, missing):
            self.rows[row[self.pk]] = row
            self._stored.add(row[self.pk])

    def get(self, key: Any) -> Row | None:
        """Return the row as the batch has folded it so far, or None when there is none."""
        if key not in self.rows:
            self.load([key])
        return self.rows[key]

    def put(self, row: Row) -> None:
        """Store the whole row (replacing the one of the same key)."""
        key = row[self.pk]
        if key not in self.rows:
            self.load([key])
        self.rows[key] = row
        self._dirty[key] = None

    def change(self, key: Any, **values: Any) -> bool:
        """Update some columns of an existing row; return False (and do nothing) without one."""
        row = self.get(key)
        if row is None:
            return False
        row.update(values)
        self._dirty[key] = None
        return True

    def write(self) -> None:
        """Write every touched row: INSERT the new ones, UPDATE the stored ones."""
        new, changed = [], []
        for key in self._dirty:
            row = self.rows[key]
            if row is None:
                continue
            (changed if key in self._stored else new).append(row)
        insert_rows(self.model, new)
        update_rows(self.model, changed)
        self._stored.update(row[self.pk] for row in new)
        self._dirty.clear()
