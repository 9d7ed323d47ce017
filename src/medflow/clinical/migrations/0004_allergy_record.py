"""Add clinical_allergy: each allergy's current state, kept by the clinical projection."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0003_aggregate_version_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="AllergyRecord",
            fields=[
                ("id", models.UUIDField(primary_key=True, serialize=False)),
                ("patient_id", models.UUIDField()),
                ("status", models.CharField(max_length=20)),
                ("state", models.JSONField()),
                ("version", models.IntegerField()),
                ("created_at", models.DateTimeField()),
                ("updated_at", models.DateTimeField()),
                ("code_system", models.CharField(max_length=20)),
                ("code", models.CharField(max_length=40)),
                ("category", models.CharField(max_length=20)),
                ("criticality", models.CharField(blank=True, max_length=20)),
            ],
            options={
                "db_table": "clinical_allergy",
                "indexes": [
                    models.Index(fields=["patient_id", "status"], name="clinical_allergy_patient_idx"),
                    models.Index(fields=["code_system", "code"], name="clinical_allergy_code_idx"),
                ],
            },
        ),
    ]
