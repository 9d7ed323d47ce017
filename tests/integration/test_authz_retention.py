"""`medflow retention apply`: archive streams past their retention period, keep their events."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from medflow.access.models import ArchivedStream
from medflow.access.retention import apply_retention
from medflow.clinical.services import add_diagnosis, start_encounter
from medflow.eventstore import snapshots
from medflow.eventstore.models import Snapshot, StoredEvent, Stream

pytestmark = pytest.mark.django_db

YEARS = {"Encounter": 10, "Diagnosis": 5}


@pytest.fixture
def records(doctor_ctx, registered):
    """An old encounter (11 years), a diagnosis changed 4 years ago, and the patient stream."""
    encounter = start_encounter(doctor_ctx, patient_id=registered, provider_id=None).aggregate_id
    diagnosis = add_diagnosis(doctor_ctx, patient_id=registered, code_system="ICD-10", code="I10",
                              display="Hypertension").aggregate_id
    now = timezone.now()
    Stream.objects.filter(aggregate_id=encounter).update(updated_at=now - timedelta(days=11 * 366))
    Stream.objects.filter(aggregate_id=diagnosis).update(updated_at=now - timedelta(days=4 * 366))
    Stream.objects.filter(aggregate_id=registered).update(updated_at=now - timedelta(days=30 * 366))
    snapshots.save(encounter, "Encounter", 1, 1, {"dummy": True})
    return {"encounter": encounter, "diagnosis": diagnosis, "patient": registered}


def test_dry_run_counts_and_writes_nothing(records):
    report = apply_retention(YEARS, dry_run=True)
    assert report.archived == {"Encounter": 1} and report.total == 1
    assert not ArchivedStream.objects.exists()
    assert Snapshot.objects.filter(aggregate_id=records["encounter"]).exists()


def test_apply_archives_only_streams_past_their_period(records):
    events_before = StoredEvent.objects.count()
    report = apply_retention(YEARS)
    assert report.archived == {"Encounter": 1} and report.snapshots_dropped == 1
    row = ArchivedStream.objects.get()
    assert row.aggregate_id == records["encounter"] and row.subject_id == records["patient"]
    assert row.retention_years == 10 and row.version == 1
    # Derived data goes; the events stay; types without a period (Patient) are kept for good.
    assert not Snapshot.objects.filter(aggregate_id=records["encounter"]).exists()
    assert StoredEvent.objects.count() == events_before
    # Idempotent.
    assert apply_retention(YEARS).total == 0
    assert ArchivedStream.objects.count() == 1


def test_a_stream_that_changes_again_is_taken_off_the_list(records, doctor_ctx):
    from medflow.clinical.services import end_encounter

    apply_retention(YEARS)
    end_encounter(doctor_ctx, records["encounter"])
    assert apply_retention(YEARS, dry_run=True).reactivated == 1
    report = apply_retention(YEARS)
    assert report.reactivated == 1 and report.total == 0
    assert not ArchivedStream.objects.exists()


def test_cli_dry_run_and_apply(records, settings):
    settings.MEDFLOW_RETENTION_YEARS = YEARS
    out = io.StringIO()
    call_command("retention", "apply", "--dry-run", stdout=out)
    assert "Encounter: would archive 1 (kept 10 years)" in out.getvalue()
    assert not ArchivedStream.objects.exists()
    out = io.StringIO()
    call_command("retention", "apply", stdout=out)
    assert "archived 1 stream(s)" in out.getvalue()
    assert ArchivedStream.objects.filter(aggregate_id=records["encounter"]).exists()
