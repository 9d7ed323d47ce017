"""Process manager: a lab result in the critical range (LL/HH) raises a critical alert for the
clinic and an urgent task for the ordering provider.

It runs inline, in the transaction that records the result, so a critical result is never stored
without its alert. Ids derive from the triggering event's id, and a stream that already exists is
left alone, so a redelivered event does nothing twice. A correction raises them too, unless the
result was critical already (its alert is out).

Results imported from the legacy system raise nothing (see `acts_on`).
"""

from datetime import timedelta
from uuid import UUID, uuid5

from medflow.context import caused_by, system_context
from medflow.eventstore.commands import load_aggregate
from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent, current_version
from medflow.labs.domain import (
    CRITICAL_FLAGS,
    LabOrder,
    LabResultRecorded,
    LabResultUpdated,
    describe,
)
from medflow.work import services as work
from medflow.work.queries import is_staff

NAMESPACE = UUID("0c9a4f57-7a0e-4b43-8d49-5a1f3c2e6b90")
# Critical results must reach the ordering provider promptly; one hour is a common lab policy.
REVIEW_WITHIN = timedelta(hours=1)


def alert_id_for(event_id: UUID) -> UUID:
    """Return the id of the alert a critical result event raises."""
    return uuid5(NAMESPACE, f"{event_id}:alert")


def task_id_for(event_id: UUID) -> UUID:
    """Return the id of the task a critical result event assigns."""
    return uuid5(NAMESPACE, f"{event_id}:task")


def acts_on(recorded: RecordedEvent) -> bool:
    """Tell whether a result event calls for an alert: it is critical, and not imported.

    A result the legacy migration (or `legacy sync`) imports was recorded in the legacy system,
    which was the system of record then: its critical results were phoned through and followed up
    there, often years ago. Raising them again would bury the clinic's live alerts under history
    and hand providers "review within the hour" tasks due decades back, for results already acted
    on. The imported result keeps its critical flag (chart, lab views and validation show it); only
    the alert and the task are not made.
    """
    return (recorded.event.abnormal_flag in CRITICAL_FLAGS
            and "legacy_table" not in recorded.metadata)


# `when`: the batch path (inline.dispatch) is cut only at the events that raise something, so
# that a page of ordinary results is projected at once.
@inline.on(LabResultRecorded, LabResultUpdated, when=acts_on)
def on_critical_result(recorded: RecordedEvent) -> None:
    if not acts_on(recorded):  # `when` asked already; this guards a direct call
        return
    event = recorded.event
    order = load_aggregate(LabOrder, recorded.aggregate_id, to_version=recorded.version)
    if isinstance(event, LabResultUpdated) and _was_critical(recorded):
        return
    ctx = caused_by(system_context("critical lab result"), recorded.id, recorded.metadata)
    result = f"{event.display} {describe(event)}"
    source = f"{recorded.event_type}:{recorded.id}"
    provider = order.ordering_provider_id
    on_staff = is_staff(order.clinic_id, provider)
    alert_id, task_id = alert_id_for(recorded.id), task_id_for(recorded.id)
    if current_version(alert_id) == 0:
        message = f"Critical lab result: {result}"
        if not on_staff:
            message += f" (ordering provider {provider} no longer works here: no task assigned)"
        work.raise_alert(
            ctx, clinic_id=order.clinic_id, patient_id=event.patient_id, severity="critical",
            message=message[:1000], source=source, alert_id=alert_id,
        )
    if on_staff and current_version(task_id) == 0:
        work.assign_task(
            ctx, assignee_id=provider, clinic_id=order.clinic_id, patient_id=event.patient_id,
            title=f"Review critical result: {result}"[:200],
            details=f"Lab order {order.id}, result {event.result_id}, specimen taken"
                    f" {event.effective_at.isoformat()}.",
            priority="urgent", due_at=recorded.timestamp + REVIEW_WITHIN, source=source,
            task_id=task_id,
        )


def _was_critical(recorded: RecordedEvent) -> bool:
    before = load_aggregate(LabOrder, recorded.aggregate_id, to_version=recorded.version - 1)
    previous = before.results.get(str(recorded.event.result_id), {})
    return previous.get("abnormal_flag") in CRITICAL_FLAGS
