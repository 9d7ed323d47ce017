"""The name words of typo-tolerant patient search (`patient_name_word`, PostgreSQL).

Triggers on `patient_read_model` keep the table (migration 0007); `refresh` derives it again from
every name. A rebuild of the patients projection calls it after its swap: the table is then
exact again, whatever the rare races between concurrent writers left (see 0007).
"""

from django.db import connection

# The distinct words of every name, in one statement: the ones no name holds go, the missing
# ones come (sorted, as the insert trigger takes them). Both sides read the same snapshot.
_REFRESH_SQL = (
    "WITH held AS (SELECT DISTINCT w FROM patient_read_model, medflow_name_words(search_key) AS w),"
    " gone AS (DELETE FROM patient_name_word WHERE word NOT IN (SELECT w FROM held))"
    " INSERT INTO patient_name_word (word) SELECT w FROM held ORDER BY w"
    " ON CONFLICT (word) DO NOTHING"
)


def refresh() -> None:
    """Make `patient_name_word` hold exactly the words of the patients' names (PostgreSQL; a
    no-op on SQLite, where typo search does not exist)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(_REFRESH_SQL)
