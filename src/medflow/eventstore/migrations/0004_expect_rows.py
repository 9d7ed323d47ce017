"""A check for statements sent together with COMMIT (see medflow.eventstore.combined).

`medflow_expect_rows(n)` returns n, or fails with SQLSTATE MF001 when n is 0: a read-model write
that needs a fallback when it finds no row cannot wait for its count before the commit, so the
statement refuses to commit without it. PostgreSQL only; SQLite sends no such statement.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION medflow_expect_rows(n bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF n = 0 THEN
        RAISE EXCEPTION 'a read-model write found no row to change' USING ERRCODE = 'MF001';
    END IF;
    RETURN n;
END
$$
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS medflow_expect_rows(bigint)")


class Migration(migrations.Migration):

    dependencies = [("eventstore", "0003_partition_event_store")]

    operations = [migrations.RunPython(forwards, backwards)]
