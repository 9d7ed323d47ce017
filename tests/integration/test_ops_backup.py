"""Backup and restore drill on the current backend: write, back up, write more, restore; the
database is exactly the backed-up state, `medflow verify` passes, and writing resumes."""

import pytest
from django.core.management import call_command
from django.db import connection

from medflow.eventstore import store
from medflow.patients.models import PatientReadModel
from medflow.patients.services import register_patient, update_patient

pytestmark = pytest.mark.django_db(transaction=True)


def state() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT aggregate_id, version FROM streams ORDER BY aggregate_id")
        streams = [tuple(map(str, row)) for row in cursor.fetchall()]
    return {
        "events": [(str(r[0]), r[1], r[4], r[5], r[8]) for r in store.read_rows(0, 1_000_000)],
        "streams": streams,
        "patients": sorted(PatientReadModel.objects.values_list("id", "family_name", "version")),
    }


def test_backup_restore_drill(tmp_path, doctor_ctx, clinic):
    first = register_patient(doctor_ctx, clinic_id=clinic.id, mrn="B-1", given_names="Rosalind",
                             family_name="Franklin", birth_date="1920-07-25", sex="female")
    update_patient(doctor_ctx, first.aggregate_id, {"phone": "+44 20 7946 0000"}, expected_version=1)
    backed_up = state()
    path = tmp_path / "medflow.backup"
    call_command("backup", str(path))
    assert path.stat().st_size > 0

    register_patient(doctor_ctx, clinic_id=clinic.id, mrn="B-2", given_names="Lise",
                     family_name="Meitner", birth_date="1878-11-07", sex="female")
    update_patient(doctor_ctx, first.aggregate_id, {"phone": "+44 20 7946 9999"}, expected_version=2)
    assert state() != backed_up

    call_command("restore", str(path), yes=True)
    assert state() == backed_up
    call_command("verify")  # raises CommandError on any violation

    # The restored store takes writes again from where the backup left off.
    result = update_patient(doctor_ctx, first.aggregate_id, {"phone": "+44 20 1"}, expected_version=2)
    assert result.version == 3
    call_command("verify")


def test_restore_refuses_a_missing_backup(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no backup"):
        call_command("restore", str(tmp_path / "nothing"), yes=True)


def test_a_damaged_backup_changes_nothing(tmp_path, doctor_ctx, clinic):
    from django.core.management.base import CommandError

    register_patient(doctor_ctx, clinic_id=clinic.id, mrn="B-3", given_names="Marie",
                     family_name="Curie", birth_date="1867-11-07", sex="female")
    before = state()
    damaged = tmp_path / "damaged.backup"
    damaged.write_bytes(b"PGDMP" + b"\x00garbage" * 100)
    with pytest.raises(CommandError):
        call_command("restore", str(damaged), yes=True)
    assert state() == before
