"""Service append latency: one event per command through the patients' application service."""

from datetime import date
from uuid import UUID, uuid4

from bench.options import Workload
from bench.progress import progress
from bench.scenarios import raw
from bench.stats import latency_summary, now_ns
from medflow.context import system_context
from medflow.patients.services import register_patient, update_patient

# Commands run before timing starts, so that first-use costs (imports, caches) stay out.
WARMUP = 20


def _register(ctx, clinic_id: UUID, index: int) -> UUID:
    result = register_patient(
        ctx, clinic_id=clinic_id, mrn=f"BENCH-{index:06d}", given_names="Ada",
        family_name=f"Bench{index}", birth_date=date(1980, 1, 1), phone="+1 000 0000000",
    )
    return result.aggregate_id


def run(workload: Workload) -> dict:
    """Register patients, then change one phone number per command; time every command.

    Each command is followed by a raw one-row insert of the same event, the floor under it.
    """
    ctx = system_context()
    clinic_id = uuid4()
    for index in range(WARMUP):
        _register(ctx, clinic_id, 1_000_000 + index)

    register_ns: list[int] = []
    patients: list[UUID] = []
    for index in progress(range(workload.patient_count), total=workload.patient_count,
                          desc="register_patient"):
        start = now_ns()
        patients.append(_register(ctx, clinic_id, index))
        register_ns.append(now_ns() - start)

    versions = dict.fromkeys(patients, 1)
    statement = raw.insert_sql()
    metadata = ctx.metadata("UpdatePatient")
    update_ns: list[int] = []
    raw_ns: list[int] = []
    total = WARMUP + workload.n
    for index in progress(range(total), total=total, desc="update_patient + raw"):
        patient_id = patients[index % len(patients)]
        start = now_ns()
        result = update_patient(
            ctx, patient_id, {"phone": f"+1 555 {index:07d}"},
            expected_version=versions[patient_id],
        )
        elapsed = now_ns() - start
        if result.version != versions[patient_id] + 1:
            raise RuntimeError(f"update_patient recorded no event (version {result.version})")
        versions[patient_id] = result.version
        raw_elapsed = raw.insert_one(statement, {"phone": f"+1 555 {index:07d}"}, metadata)
        if index >= WARMUP:
            update_ns.append(elapsed)
            raw_ns.append(raw_elapsed)

    return {
        "service_register": {
            "command": "patients.services.register_patient", **latency_summary(register_ns),
        },
        "service_update": {
            "command": "patients.services.update_patient (phone, expected_version)",
            "patients": len(patients),
            "warmup": WARMUP,
            **latency_summary(update_ns),
        },
        "raw_single_insert": {
            "statement": "INSERT 1 row; COMMIT", "warmup": WARMUP, **latency_summary(raw_ns),
        },
    }
