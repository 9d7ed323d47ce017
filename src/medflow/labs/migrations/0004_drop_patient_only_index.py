"""Drop lab_results_read_model's index on patient_id alone: its (patient_id, time) index serves every lookup
by patient (the foreign key's checks included), and the second index cost every insert.

By name, on both backends: an AlterField would drop and re-add (and so re-check) the foreign key
on PostgreSQL, and rebuild the whole table on SQLite, for the same end."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("labs", "0003_result_order_index"),
        ("patients", "0007_name_words"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "lab_results_read_model_patient_id_ac7720ed"',
                    'CREATE INDEX "lab_results_read_model_patient_id_ac7720ed" ON "lab_results_read_model" ("patient_id")',
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="labresultreadmodel",
                    name="patient",
                    field=models.ForeignKey(
                        db_column="patient_id", db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING, related_name="+",
                        to="patients.patientreadmodel",
                    ),
                ),
            ],
        ),
    ]
