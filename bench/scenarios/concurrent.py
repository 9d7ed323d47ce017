"""Service append under concurrency: N client processes, each with its own connection, each
changing phone numbers of patients of its own; then, once all have finished, the same number of
raw one-row inserts from the same N processes (each with a plain driver connection of its own).

On SQLite every write transaction takes the database's single write lock (BEGIN IMMEDIATE), so
the clients queue for it: the latencies include that wait, and the aggregate rate cannot exceed
one writer's.
"""

import os
from datetime import date
from uuid import uuid4

from bench.concurrency import run_clients, summarise_clients
from bench.options import Workload
from bench.stats import now_ns

WARMUP = 10


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medflow.settings")
    import django

    django.setup()


def client(index: int, barrier, *, commands: int, patients: int) -> dict:
    """Register `patients` patients and warm up; then, in step with the other clients, time
    `commands` updates, and then `commands` plain-driver one-row inserts (each autocommitted)."""
    _setup_django()
    from bench.scenarios import raw
    from medflow.context import system_context
    from medflow.patients.services import register_patient, update_patient

    ctx = system_context()
    clinic_id = uuid4()
    ids, versions = [], {}
    for number in range(patients):
        result = register_patient(
            ctx, clinic_id=clinic_id, mrn=f"C{index}-{number:06d}", given_names="Ada",
            family_name=f"Client{index}", birth_date=date(1980, 1, 1), phone="+1 000 0000000",
        )
        ids.append(result.aggregate_id)
        versions[result.aggregate_id] = result.version

    def update(number: int) -> None:
        patient_id = ids[number % len(ids)]
        result = update_patient(ctx, patient_id, {"phone": f"+1 5{index} {number:07d}"},
                                expected_version=versions[patient_id])
        if result.version != versions[patient_id] + 1:
            raise RuntimeError(f"update_patient recorded no event (version {result.version})")
        versions[patient_id] = result.version

    statement = raw.insert_sql()
    metadata = ctx.metadata("UpdatePatient")
    for number in range(WARMUP):
        update(number)
        raw.insert_one(statement, {"phone": f"+1 5{index} {number:07d}"}, metadata)

    barrier.wait()
    service = {"samples_ns": [], "start_ns": now_ns()}
    for number in range(WARMUP, WARMUP + commands):
        start = now_ns()
        update(number)
        service["samples_ns"].append(now_ns() - start)
    service["end_ns"] = now_ns()

    barrier.wait()  # every client has finished its commands
    inserts = {"samples_ns": [], "start_ns": now_ns()}
    for number in range(commands):
        inserts["samples_ns"].append(
            raw.insert_one(statement, {"phone": f"+1 5{index} {number:07d}"}, metadata))
    inserts["end_ns"] = now_ns()
    return {"service": service, "raw": inserts}


def run(workload: Workload) -> dict:
    """Run the service clients, then the raw clients, `workload.clients` processes each."""
    clients = workload.clients
    commands = workload.n // clients
    patients = max(2, workload.patient_count // clients)
    gathered = run_clients(client, clients, commands=commands, patients=patients)
    service = [g["service"] for g in gathered]
    raw_runs = [g["raw"] for g in gathered]
    return {
        "service_update_concurrent": {
            "command": "patients.services.update_patient (phone, expected_version)",
            "commands_per_client": commands, "patients_per_client": patients,
            "warmup_per_client": WARMUP, **summarise_clients(service),
        },
        "raw_single_insert_concurrent": {
            "statement": "INSERT 1 row, autocommit (plain driver)",
            "inserts_per_client": commands, **summarise_clients(raw_runs),
        },
    }
