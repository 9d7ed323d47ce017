"""The words of patients' names, for typo-tolerant search on PostgreSQL.

Typo search used to compare each misspelt word with every name through pg_trgm word similarity:
thousands of candidate rows rechecked per search (p99 42 ms over 100,000 patients), and a
similarity threshold that misses many typos of short names ("smtih" is 0.2 similar to "smith").
Now the misspelt word is compared with the distinct name words by edit distance
(fuzzystrmatch's levenshtein_less_equal), and the names holding the close words are found
through the trigram index as an exact search would.

`patient_name_word` is kept by triggers on `patient_read_model`: inserted rows add their words;
a changed name adds its new words and drops the old ones no other name holds (a forgotten
patient's tombstone has no name); deleted rows drop theirs likewise. The insert and delete
triggers are per statement, so a bulk insert does set-based work. A rebuild copies its rows in
(never renaming a table with triggers into place, see projections.rebuild), then calls
`patients.namewords.refresh`, which derives the whole table again. The table exists on SQLite
too, empty (no typo search there).

Words are added with ON CONFLICT DO NOTHING, never locked: registrations sharing a common word
do not wait for each other. The price is two rare races between concurrent transactions (a word
dropped by one while another registers the same word; the last two holders of a word renamed
at once), which the next refresh (any rebuild of `patients`) repairs.

Reversing drops the triggers, the functions and the table; fuzzystrmatch stays (see 0004).
"""

from django.db import migrations, models

# The words of an unaccented search name worth comparing with a typo (three letters or more),
# repeats included. Neither STRICT nor DISTINCT: the planner then inlines it, 3x faster over
# every name (callers take the distinct words).
WORDS_FUNCTION = r"""
CREATE OR REPLACE FUNCTION medflow_name_words(key text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT w FROM regexp_split_to_table(key, '\s+') AS w WHERE length(w) >= 3
$$
"""

# Delete the words among `candidates` that no name holds any more; the LIKE finds the names
# through the trigram index, the array test keeps whole words only.
DROP_UNUSED = r"""
    DELETE FROM patient_name_word d
    WHERE d.word IN (SELECT * FROM candidates)
      AND NOT EXISTS (
          SELECT 1 FROM patient_read_model p
          WHERE p.search_key LIKE '%' || replace(replace(replace(d.word, '\', '\\'), '%', '\%'),
                                                 '_', '\_') || '%'
            AND d.word = ANY (regexp_split_to_array(p.search_key, '\s+')))
"""

TRIGGER_FUNCTIONS = (
    # Sorted, so that two writers adding the same new words take them in one order.
    r"""
CREATE OR REPLACE FUNCTION medflow_name_words_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO patient_name_word (word)
    SELECT DISTINCT w FROM added, medflow_name_words(added.search_key) AS w ORDER BY w
    ON CONFLICT (word) DO NOTHING;
    RETURN NULL;
END $$
""",
    r"""
CREATE OR REPLACE FUNCTION medflow_name_words_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO patient_name_word (word)
    SELECT DISTINCT w FROM medflow_name_words(NEW.search_key) AS w ORDER BY w
    ON CONFLICT (word) DO NOTHING;
    WITH candidates AS (
        SELECT w FROM medflow_name_words(OLD.search_key) AS w
        EXCEPT SELECT w FROM medflow_name_words(NEW.search_key) AS w)
""" + DROP_UNUSED + r""";
    RETURN NULL;
END $$
""",
    r"""
CREATE OR REPLACE FUNCTION medflow_name_words_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH candidates AS (
        SELECT DISTINCT w FROM removed, medflow_name_words(removed.search_key) AS w)
""" + DROP_UNUSED + r""";
    RETURN NULL;
END $$
""",
)

TRIGGERS = (
    "CREATE TRIGGER patient_name_words_added AFTER INSERT ON patient_read_model"
    " REFERENCING NEW TABLE AS added FOR EACH STATEMENT"
    " EXECUTE FUNCTION medflow_name_words_added()",
    # Only when the name changed: a phone number's update costs nothing here.
    "CREATE TRIGGER patient_name_words_changed AFTER UPDATE ON patient_read_model"
    " FOR EACH ROW WHEN (OLD.search_key IS DISTINCT FROM NEW.search_key)"
    " EXECUTE FUNCTION medflow_name_words_changed()",
    "CREATE TRIGGER patient_name_words_removed AFTER DELETE ON patient_read_model"
    " REFERENCING OLD TABLE AS removed FOR EACH STATEMENT"
    " EXECUTE FUNCTION medflow_name_words_removed()",
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch")
    # Typo search compares a typed word with the words whose first or second letter is one of
    # its first two (queries.CLOSE_PATTERNS_SQL): one index for each, by letter and then length.
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS patient_name_word_first_idx ON patient_name_word"
        " (left(word, 1), length(word))"
    )
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS patient_name_word_second_idx ON patient_name_word"
        " (substr(word, 2, 1), length(word))"
    )
    schema_editor.execute(WORDS_FUNCTION)
    for sql in (*TRIGGER_FUNCTIONS, *TRIGGERS):
        schema_editor.execute(sql, params=None)  # no parameters: its % signs are SQL's
    schema_editor.execute(
        "INSERT INTO patient_name_word (word) SELECT DISTINCT w FROM patient_read_model,"
        " medflow_name_words(search_key) AS w"
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for trigger in ("added", "changed", "removed"):
        schema_editor.execute(
            f"DROP TRIGGER IF EXISTS patient_name_words_{trigger} ON patient_read_model")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS medflow_name_words_{trigger}()")
    schema_editor.execute("DROP FUNCTION IF EXISTS medflow_name_words(text)")


class Migration(migrations.Migration):

    dependencies = [
        ("patients", "0006_search_key"),
    ]

    operations = [
        migrations.CreateModel(
            name="PatientNameWord",
            fields=[("word", models.TextField(primary_key=True, serialize=False))],
            options={"db_table": "patient_name_word"},
        ),
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
