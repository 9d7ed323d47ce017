"""A stored unaccented search name for patient search on PostgreSQL (a no-op on SQLite).

Search used to compare `medflow_unaccent(search_name)`, served by an expression index; but every
row the index proposes is checked again against the table, and each check called the SQL
function again (twice per row with the typo operator): two to three times the cost of the same
search against a stored column, over the thousands of rows a common name matches. So the
unaccented name becomes a generated column, `search_key`, that PostgreSQL keeps itself (the
projection writes `search_name` as before), and the trigram GIN index moves onto it.

The new index has `fastupdate` off: with it on, the rows inserted since the last vacuum wait in
a pending list that every search reads in full (6,500 rows there cost about 10 ms a search after
a bulk load); off, each insert or update of a patient writes its trigrams straight away.

Adding the column rewrites the table (seconds for 100,000 patients, under an exclusive lock).
Reversing restores the expression index of 0004 and drops the column.
"""

from django.db import migrations

OLD_INDEX = (
    "CREATE INDEX IF NOT EXISTS patient_rm_name_trgm_idx ON patient_read_model"
    " USING gin (medflow_unaccent(search_name) gin_trgm_ops)"
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "ALTER TABLE patient_read_model ADD COLUMN IF NOT EXISTS search_key text"
        " GENERATED ALWAYS AS (medflow_unaccent(search_name)) STORED"
    )
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS patient_rm_search_key_trgm_idx ON patient_read_model"
        " USING gin (search_key gin_trgm_ops) WITH (fastupdate = off)"
    )
    schema_editor.execute("DROP INDEX IF EXISTS patient_rm_name_trgm_idx")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(OLD_INDEX)
    schema_editor.execute("DROP INDEX IF EXISTS patient_rm_search_key_trgm_idx")
    schema_editor.execute("ALTER TABLE patient_read_model DROP COLUMN IF EXISTS search_key")


class Migration(migrations.Migration):

    dependencies = [
        ("patients", "0005_search_lookup_indexes"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
