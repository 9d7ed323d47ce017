"""Turn the read model's patient_id into the seeds' foreign key to patient_read_model (the column
keeps its name)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0001_initial"),
        ("patients", "0003_forgotten_tombstone"),
    ]

    # The database change is expressed on the column's own name (patient_id) so that it reverses
    # on SQLite too: reversing the rename first left an index naming "patient_id" on a field
    # called "patient", and SQLite's table rebuild failed (found by tests/integration/
    # test_ops_migrations.py). The schema it builds is the same as before.
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterField(
                    model_name="clinicaleventrecord",
                    name="patient_id",
                    field=models.ForeignKey(
                        db_column="patient_id", on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+", to="patients.patientreadmodel",
                    ),
                ),
            ],
            state_operations=[
                migrations.RenameField(model_name="clinicaleventrecord", old_name="patient_id", new_name="patient"),
                migrations.AlterField(
                    model_name="clinicaleventrecord",
                    name="patient",
                    field=models.ForeignKey(
                        db_column="patient_id", on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+", to="patients.patientreadmodel",
                    ),
                ),
            ],
        ),
    ]
