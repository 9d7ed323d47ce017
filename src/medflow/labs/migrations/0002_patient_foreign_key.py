"""Turn the read model's patient_id into the seeds' foreign key to patient_read_model (the column
keeps its name)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("labs", "0001_initial"),
        ("patients", "0003_forgotten_tombstone"),
    ]

    operations = [
        migrations.RenameField(model_name="labresultreadmodel", old_name="patient_id", new_name="patient"),
        migrations.AlterField(
            model_name="labresultreadmodel",
            name="patient",
            field=models.ForeignKey(
                db_column="patient_id", on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+", to="patients.patientreadmodel",
            ),
        ),
    ]
