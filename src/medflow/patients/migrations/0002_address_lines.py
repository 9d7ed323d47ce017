"""Reshape the read model's addresses for event schema 2 (`line` -> `lines`), both ways."""

from django.db import migrations


def _reshape(apps, convert):
    PatientReadModel = apps.get_model("patients", "PatientReadModel")
    for row in PatientReadModel.objects.exclude(current_data__address=None).iterator():
        address = row.current_data.get("address")
        if isinstance(address, dict):
            row.current_data["address"] = convert(address)
            row.save(update_fields=["current_data"])


def line_to_lines(address):
    if "line" not in address:
        return address
    line = address.pop("line")
    return {**address, "lines": [line] if line else []}


def lines_to_line(address):
    if "lines" not in address:
        return address
    lines = address.pop("lines")
    return {**address, "line": ", ".join(lines)}


class Migration(migrations.Migration):
    dependencies = [("patients", "0001_initial")]

    operations = [
        migrations.RunPython(
            lambda apps, schema: _reshape(apps, line_to_lines),
            lambda apps, schema: _reshape(apps, lines_to_line),
        ),
    ]
