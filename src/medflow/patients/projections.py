"""Inline projection: keep `patient_read_model` in the append's transaction."""

from collections.abc import Sequence

from medflow.eventstore.commands import aggregate_after
from medflow.eventstore.events import REDACTED
from medflow.eventstore.handlers import inline
from medflow.eventstore.store import RecordedEvent
from medflow.patients import namewords
from medflow.patients.domain import (
    Patient,
    PatientArchived,
    PatientForgotten,
    PatientRegistered,
    PatientUpdated,
)
from medflow.patients.models import PatientReadModel
from medflow.projections.bulk import Rows
from medflow.projections.rowsql import insert_row, update_row

# The tables this projection owns, in insert order (rebuild and verify use it).
READ_MODELS = [PatientReadModel]
STREAM_VERSIONED = [PatientReadModel]
# After a rebuild's swap, the name words of typo search (kept by triggers) are derived again.
AFTER_SWAP = namewords.refresh


def row_values(state: dict, recorded: RecordedEvent) -> dict:
    """Return the read-model columns for a patient state after `recorded`."""
    # A forgotten patient (or, during a replay, one of their redacted events) leaves a tombstone.
    if state.get("forgotten") or recorded.redacted:
        return {
            "clinic_id": state["clinic_id"], "mrn": f"forgotten:{recorded.aggregate_id.hex[:24]}",
            "family_name": REDACTED, "given_names": REDACTED, "search_name": "",
            "birth_date": None, "archived": state["archived"], "forgotten": True,
            "current_data": {"id": state["id"], "clinic_id": state["clinic_id"],
                             "archived": state["archived"], "forgotten": True},
            "last_updated": recorded.timestamp, "version": recorded.version,
        }
    return {
        "clinic_id": state["clinic_id"],
        "mrn": state["mrn"],
        "family_name": state["family_name"],
        "given_names": state["given_names"],
        "search_name": f"{state['given_names']} {state['family_name']}".lower(),
        "birth_date": state["birth_date"],
        "archived": state["archived"],
        "current_data": state,
        "last_updated": recorded.timestamp,
        "version": recorded.version,
    }


@inline.on(PatientRegistered)
@inline.pending_safe
def on_registered(recorded: RecordedEvent) -> None:
    patient = Patient(recorded.aggregate_id)
    patient.when(recorded.event)
    insert_row(PatientReadModel, {"id": recorded.aggregate_id,
                                  **row_values(patient.state(), recorded)})


@inline.on(PatientUpdated, PatientArchived, PatientForgotten)
@inline.pending_safe
def on_changed(recorded: RecordedEvent) -> None:
    patient = aggregate_after(recorded)
    if patient is None:
        _fold_into_row(recorded)
        return
    # The command's own aggregate is the row's state folded with this event, provided the row
    # is at the version before it: one UPDATE then, with no read back.
    update_row(
        PatientReadModel, {"id": recorded.aggregate_id, **row_values(patient.state(), recorded)},
        where={"version": recorded.version - 1}, on_miss=lambda: _fold_into_row(recorded),
    )


def _fold_into_row(recorded: RecordedEvent) -> None:
    """Fold the event into the state the patient's row holds, and store the result."""
    row = PatientReadModel.objects.get(id=recorded.aggregate_id)
    patient = Patient.from_snapshot(recorded.aggregate_id, row.version, row.current_data)
    patient.when(recorded.event)
    PatientReadModel.objects.filter(id=recorded.aggregate_id).update(
        **row_values(patient.state(), recorded)
    )


@inline.batched()
def apply_batch(events: Sequence[RecordedEvent]) -> None:
    """Fold a page of patient events into their rows, as the handlers above would one by one."""
    rows = Rows(PatientReadModel)
    rows.load({recorded.aggregate_id for recorded in events})
    # Patients folded so far, with their last event: their row is built once, at the end, unless
    # an event leaves a tombstone that the next one must start from (as on_changed would).
    folding: dict = {}
    for recorded in events:
        key = recorded.aggregate_id
        if isinstance(recorded.event, PatientRegistered):
            patient = Patient(key)
        elif key in folding:
            patient = folding[key][0]
        else:
            row = rows.get(key)
            if row is None:
                raise PatientReadModel.DoesNotExist(f"no patient row {key}")
            patient = Patient.from_snapshot(key, row["version"], row["current_data"])
        patient.when(recorded.event)
        folding[key] = (patient, recorded)
        if patient.forgotten or recorded.redacted:
            values = row_values(patient.state(), recorded)
            rows.put({"id": key, **values})
            folding[key] = (Patient.from_snapshot(key, recorded.version, values["current_data"]),
                            recorded)
    for key, (patient, recorded) in folding.items():
        rows.put({"id": key, **row_values(patient.state(), recorded)})
    rows.write()
