"""Make the access log append-only in the database itself: updates and deletes are refused."""

from django.db import migrations

POSTGRES_UP = """
CREATE FUNCTION access_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'access_log is append-only'; END $$;
CREATE TRIGGER access_log_no_update BEFORE UPDATE OR DELETE ON access_log
FOR EACH ROW EXECUTE FUNCTION access_log_refuse_change();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS access_log_no_update ON access_log;
DROP FUNCTION IF EXISTS access_log_refuse_change();
"""
SQLITE_UP = [
    "CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log"
    " BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END",
    "CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log"
    " BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END",
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS access_log_no_update",
               "DROP TRIGGER IF EXISTS access_log_no_delete"]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_UP)
    else:
        for sql in SQLITE_UP:
            schema_editor.execute(sql)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DOWN)
    else:
        for sql in SQLITE_DOWN:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
