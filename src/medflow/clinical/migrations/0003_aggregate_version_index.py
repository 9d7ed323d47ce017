"""Index clinical_read_model by (aggregate_id, version): the projection looks up an aggregate's
first event (its encounter) and the queries a version's entry."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0002_patient_foreign_key"),
        ("patients", "0005_search_lookup_indexes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="clinicaleventrecord",
            index=models.Index(fields=["aggregate_id", "version"], name="clinical_rm_aggregate_idx"),
        ),
    ]
