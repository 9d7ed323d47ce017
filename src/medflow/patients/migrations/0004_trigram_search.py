"""Typo-tolerant, accent-insensitive patient search on PostgreSQL (a no-op on SQLite).

Creates the extensions pg_trgm, unaccent and pgcrypto; an IMMUTABLE wrapper of unaccent (the
extension's own function is only STABLE, so an index cannot use it); and a trigram GIN index on
the unaccented search name. Reversing drops the index and the function and keeps the extensions
(other objects, or the DBA, may rely on them).
"""

from django.db import migrations

EXTENSIONS = ("pg_trgm", "unaccent", "pgcrypto")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in EXTENSIONS:
        schema_editor.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT extnamespace::regnamespace::text FROM pg_extension"
                       " WHERE extname = 'unaccent'")
        schema = cursor.fetchone()[0]
    schema_editor.execute(
        "CREATE OR REPLACE FUNCTION medflow_unaccent(text) RETURNS text"
        " LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS"
        f" $$ SELECT {schema}.unaccent('{schema}.unaccent'::regdictionary, $1) $$"
    )
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS patient_rm_name_trgm_idx ON patient_read_model"
        " USING gin (medflow_unaccent(search_name) gin_trgm_ops)"
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS patient_rm_name_trgm_idx")
    schema_editor.execute("DROP FUNCTION IF EXISTS medflow_unaccent(text)")


class Migration(migrations.Migration):

    dependencies = [
        ("patients", "0003_forgotten_tombstone"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
