"""Critical lab results and the legacy migration: imported ones keep their critical flag but
raise no alert and no task (medflow.labs.process.acts_on says why); a batch of results is then
projected in one piece, while critical results written through MedFlow still cut it and raise
exactly what one-by-one dispatch raises."""

import uuid

import pytest
from django.utils import timezone

from medflow.eventstore import store
from medflow.eventstore.batch import UnitOfWork
from medflow.eventstore.handlers import inline
from medflow.labs.domain import LabOrder
from medflow.labs.models import LabResultReadModel
from medflow.labs.process import alert_id_for, task_id_for
from medflow.labs.services import place_lab_order
from medflow.legacy import mapping as mp
from medflow.legacy.migrate import migrate
from medflow.legacy.validate import validate
from medflow.work.models import AlertReadModel, TaskReadModel
from tests.integration.test_legacy_migration import write_subset

pytestmark = pytest.mark.django_db

LAB_EVENTS = {"LabOrderPlaced", "LabResultRecorded"}


@pytest.fixture
def critical_everywhere(monkeypatch):
    """Give every numeric legacy result a critical limit at its own value: all become HH."""
    plain = mp.lab_fields

    def with_limit(row):
        fields = plain(row)
        if "value" in fields:
            fields["critical_high"] = fields["value"]
        return fields

    monkeypatch.setattr(mp, "lab_fields", with_limit)


@pytest.fixture
def pieces(monkeypatch):
    """Record the event types of each piece inline.dispatch projects at once."""
    seen: list[list[str]] = []
    cut = inline._dispatch_piece

    def spy(plan, events):
        seen.append([r.event_type for r in events])
        cut(plan, events)

    monkeypatch.setattr(inline, "_dispatch_piece", spy)
    return seen


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "per-row"])
def test_imported_critical_results_keep_their_flag_and_raise_nothing(
        tmp_path, critical_everywhere, pieces, batched):
    from medflow.legacy.synthea import load_synthea

    load_synthea(write_subset(tmp_path / "synthea"))
    report = migrate(batch_size=40, batched=batched)
    assert report.refusals == []
    critical = LabResultReadModel.objects.filter(abnormal_flag="HH").count()
    assert critical > 40  # more than one batch of them
    assert AlertReadModel.objects.count() == 0 and TaskReadModel.objects.count() == 0
    assert not [e for e in store.iter_all(0) if e.aggregate_type in ("Alert", "Task")]
    assert validate().ok
    if batched:
        # Each batch of lab rows went through the projections in one piece, not one per result.
        lab_pieces = [p for p in pieces if set(p) <= LAB_EVENTS]
        assert lab_pieces and all(len(p) > 1 for p in lab_pieces)
        assert len(lab_pieces) <= -(-critical // 40) + 2


def test_critical_results_written_through_medflow_still_alert_from_a_batch(
        doctor_ctx, registered, pieces):
    order_id = place_lab_order(doctor_ctx, registered, tests=[
        {"loinc_code": "2823-3", "display": "Potassium"}]).aggregate_id
    values = [4.2, 6.8, 4.0, 7.1, 3.9]  # critical_high 6.5: the 2nd and 4th are critical
    uow = UnitOfWork()
    for value in values:
        uow.execute(doctor_ctx, LabOrder, order_id, lambda order, value=value: order.record_result(
            result_id=uuid.uuid4(), now=timezone.now(), loinc_code="2823-3",
            display="Potassium", unit="mmol/L", value=value, critical_high=6.5,
            effective_at=timezone.now()), command="RecordLabResult")
    recorded = uow.commit()
    critical = [r for r in recorded if r.event.abnormal_flag == "HH"]
    assert len(critical) == 2
    assert set(AlertReadModel.objects.values_list("id", flat=True)) == {
        alert_id_for(r.id) for r in critical}
    assert set(TaskReadModel.objects.values_list("id", flat=True)) == {
        task_id_for(r.id) for r in critical}
    # Cut after each critical result (the process manager sees the read models as of it).
    results = [p for p in pieces if "LabResultRecorded" in p]
    assert [len(p) for p in results] == [2, 2, 1]
