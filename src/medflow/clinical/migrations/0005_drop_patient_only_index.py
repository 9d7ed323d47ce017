"""Drop clinical_read_model's index on patient_id alone: its (patient_id, time) index serves every lookup
by patient (the foreign key's checks included), and the second index cost every insert.

By name, on both backends: an AlterField would drop and re-add (and so re-check) the foreign key
on PostgreSQL, and rebuild the whole table on SQLite, for the same end."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0004_allergy_record"),
        ("patients", "0007_name_words"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "clinical_read_model_patient_id_51c019af"',
                    'CREATE INDEX "clinical_read_model_patient_id_51c019af" ON "clinical_read_model" ("patient_id")',
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="clinicaleventrecord",
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
