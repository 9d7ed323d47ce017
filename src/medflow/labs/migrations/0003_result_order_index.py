"""Index lab results by order: the projection reads an order's results for every event it folds
(without the index, each lab event scanned the whole table)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("labs", "0002_patient_foreign_key"),
        ("patients", "0005_search_lookup_indexes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="labresultreadmodel",
            index=models.Index(fields=["order_id"], name="lab_results_order_idx"),
        ),
    ]
