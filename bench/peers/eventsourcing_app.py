"""The `eventsourcing` library (9.5) doing MedFlow's benchmark work on the same database server.

A Patient aggregate with a registration and phone, email, address and name changes, in an
Application on the library's own PostgreSQL or SQLite persistence module, used as its
documentation shows: `repository.get`, a command method, `save`. No Django, no MedFlow code.

What it does not do, and MedFlow does in the same figures: validate payloads (pydantic), keep a
streams table, check an MRN, update read models in the command's transaction, record per-event
metadata, cache aggregates. It has no read models, so its "rebuild" is a read of the whole
notification log, and its "patient read" is a reconstruction of the aggregate from its events.
"""

import random
from datetime import date
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.concurrency import run_clients, summarise_clients
from bench.options import Workload
from bench.progress import progress, say
from bench.stats import latency_summary, now_ns, throughput_summary

WARMUP = 20
CONCURRENT_WARMUP = 10
LOADS_WARMUP = 2


class Patient(Aggregate):
    """A patient of one clinic (dates kept as ISO strings: the JSON transcoder has no `date`)."""

    @event("Registered")
    def __init__(self, clinic_id: UUID, mrn: str, given_names: str, family_name: str,
                 birth_date: str, phone: str | None = None) -> None:
        self.clinic_id = clinic_id
        self.mrn = mrn
        self.given_names = given_names
        self.family_name = family_name
        self.birth_date = birth_date
        self.phone = phone
        self.email: str | None = None
        self.address: dict | None = None

    @event("PhoneChanged")
    def change_phone(self, phone: str) -> None:
        self.phone = phone

    @event("EmailChanged")
    def change_email(self, email: str) -> None:
        self.email = email

    @event("AddressChanged")
    def change_address(self, address: dict) -> None:
        self.address = address

    @event("Renamed")
    def rename(self, family_name: str) -> None:
        self.family_name = family_name


class PatientApp(Application):
    """Patients on the library's persistence, with its snapshot store.

    Snapshots are taken explicitly (the load scenario), never by `save`: with
    `snapshotting_intervals` a save of 1000 events would take ten, each one a replay.
    """

    is_snapshotting_enabled = True


def app_env(backend: str, db: str) -> dict[str, str]:
    """Return the application's environment: `db` is the SQLite file or a PostgreSQL URL."""
    if backend == "sqlite":
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": db,
                "SQLITE_LOCK_TIMEOUT": "30"}
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(db)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": params["dbname"],
        "POSTGRES_HOST": params.get("host") or "127.0.0.1", "POSTGRES_PORT": str(params.get("port") or 5432),
        "POSTGRES_USER": params.get("user") or "postgres", "POSTGRES_PASSWORD": params.get("password") or "",
    }


def register(app: PatientApp, label: str) -> UUID:
    """Register one patient; return its id."""
    patient = Patient(clinic_id=uuid4(), mrn=label, given_names="Ada", family_name="Bench",
                      birth_date=date(1980, 1, 1).isoformat(), phone="+1 000 0000000")
    app.save(patient)
    return patient.id


def change_phone(app: PatientApp, patient_id: UUID, phone: str) -> None:
    """The one-event command: load, change the phone, save."""
    patient: Patient = app.repository.get(patient_id)
    patient.change_phone(phone)
    app.save(patient)


# 1. One-event commands -------------------------------------------------------------------------

def commands(app: PatientApp, workload: Workload) -> dict:
    """Time `n` one-event commands from one client, rotating over `patient_count` patients."""
    ids = [register(app, f"W-{index}") for index in range(WARMUP)]
    for index, patient_id in enumerate(ids):
        change_phone(app, patient_id, f"+1 444 {index:07d}")
    register_ns, patients = [], []
    for index in range(workload.patient_count):
        start = now_ns()
        patients.append(register(app, f"BENCH-{index:06d}"))
        register_ns.append(now_ns() - start)
    samples = []
    for index in progress(range(workload.n), total=workload.n, desc="es command"):
        start = now_ns()
        change_phone(app, patients[index % len(patients)], f"+1 555 {index:07d}")
        samples.append(now_ns() - start)
    return {
        "es_register": {"command": "save(Patient(...))", **latency_summary(register_ns)},
        "es_command": {
            "command": "repository.get; change_phone; save", "patients": len(patients),
            **latency_summary(samples),
        },
    }


def command_client(index: int, barrier, *, env: dict, commands: int, patients: int) -> dict:
    """One of the concurrent clients: its own application, connection and patients."""
    app = PatientApp(env=env)
    ids = [register(app, f"C{index}-{number}") for number in range(patients)]
    for number in range(CONCURRENT_WARMUP):
        change_phone(app, ids[number % len(ids)], f"+1 4{index} {number:07d}")
    barrier.wait()
    samples = []
    start_all = now_ns()
    for number in range(commands):
        start = now_ns()
        change_phone(app, ids[number % len(ids)], f"+1 5{index} {number:07d}")
        samples.append(now_ns() - start)
    end_all = now_ns()
    app.close()
    return {"samples_ns": samples, "start_ns": start_all, "end_ns": end_all}


def concurrent_commands(env: dict, workload: Workload) -> dict:
    """Time the one-event command from `clients` processes at once."""
    clients = workload.clients
    per_client = workload.n // clients
    # The parent's application created the tables: clients creating them at once race on the
    # catalogue ("tuple concurrently updated").
    gathered = run_clients(command_client, clients, env={**env, "CREATE_TABLE": "n"},
                           commands=per_client,
                           patients=max(2, workload.patient_count // clients))
    return {"es_command_concurrent": {
        "command": "repository.get; change_phone; save", "commands_per_client": per_client,
        **summarise_clients(gathered),
    }}


# 2. Bulk append ----------------------------------------------------------------------------------

def bulk(app: PatientApp, workload: Workload) -> dict:
    """Save new aggregates of `batch` pending events each (one insert); time the saves."""
    batches = workload.events // workload.batch
    samples = []
    for _ in progress(range(batches), total=batches, desc="es bulk save"):
        patient = Patient(clinic_id=uuid4(), mrn="BULK", given_names="Ada", family_name="Bulk",
                          birth_date="1980-01-01")
        for index in range(1, workload.batch):
            patient.change_phone(f"+1 555 {index:07d}")
        start = now_ns()
        app.save(patient)
        samples.append(now_ns() - start)
    return {"es_bulk_append": {
        "call": f"save(aggregate with {workload.batch} pending events)",
        **throughput_summary(workload.batch, samples),
    }}


# 3. Aggregate loads -------------------------------------------------------------------------------

def _time_gets(app: PatientApp, patient_id: UUID, loads: int, desc: str) -> tuple[list[int], Patient]:
    samples, patient = [], None
    for index in progress(range(LOADS_WARMUP + loads), total=LOADS_WARMUP + loads, desc=desc):
        start = now_ns()
        patient = app.repository.get(patient_id)
        elapsed = now_ns() - start
        if index >= LOADS_WARMUP:
            samples.append(elapsed)
    return samples, patient


def loads(app: PatientApp, workload: Workload) -> dict:
    """Load a `stream`-event aggregate with no snapshot, then with one at head - snapshot_lag."""
    patient = Patient(clinic_id=uuid4(), mrn="LOAD-1", given_names="Ada", family_name="Longstream",
                      birth_date="1980-01-01")
    for index in range(1, workload.stream):
        patient.change_phone(f"+1 555 {index:07d}")
    # Stored in batches, as MedFlow's stream is.
    pending = patient.collect_events()
    for start in range(0, len(pending), workload.batch):
        app.events.put(pending[start:start + workload.batch])
    plain_ns, plain = _time_gets(app, patient.id, workload.loads, "es load, no snapshot")
    at = workload.stream - workload.snapshot_lag
    app.take_snapshot(patient.id, version=at)
    snap_ns, snapped = _time_gets(app, patient.id, workload.loads, "es load, snapshot")
    if plain.version != workload.stream or snapped.phone != plain.phone:
        raise RuntimeError("eventsourcing: loading from the snapshot gave another state")
    return {
        "es_load_no_snapshot": {"stream_events": workload.stream, **latency_summary(plain_ns)},
        "es_load_snapshot": {"stream_events": workload.stream, "snapshot_version": at,
                             **latency_summary(snap_ns)},
    }


# 4. The log: write it, read it all, read patients -------------------------------------------------

def _patient_events(rng: random.Random, index: int, per_patient: int, number: int):
    patient = Patient(clinic_id=uuid4(), mrn=f"RB-{index:07d}", given_names="Grace",
                      family_name=f"Rebuild{index}", birth_date=f"{1950 + index % 60}-01-01",
                      phone="+1 000 0000000")
    for _ in range(per_patient - 1):
        number += 1
        roll = rng.random()
        if roll < 0.6:
            patient.change_phone(f"+1 555 {number:07d}")
        elif roll < 0.8:
            patient.change_email(f"p{number}@example.org")
        elif roll < 0.95:
            patient.change_address({"lines": [f"{number} Main St"], "city": "Springfield",
                                    "postal_code": f"{number % 100000:05d}", "country": "US"})
        else:
            patient.rename(f"Renamed{number}")
    return patient, number


def log_scenarios(app: PatientApp, workload: Workload) -> dict:
    """Write the rebuild-sized log, read it whole (with and without decoding), read patients."""
    rng = random.Random(1234)
    per_patient = workload.events_per_patient
    group = max(1, workload.batch // per_patient)
    ids: list[UUID] = []
    number = 0
    # The table holds the other scenarios' events too: read from where this log starts.
    first_id = app.recorder.max_notification_id() or 0
    start = now_ns()
    patients = workload.rebuild_patients
    for first in progress(range(0, patients, group), total=-(-patients // group), desc="es write log"):
        batch = []
        for index in range(first, min(first + group, patients)):
            patient, number = _patient_events(rng, index, per_patient, number)
            batch.append(patient)
            ids.append(patient.id)
        app.save(*batch)
    write_s = (now_ns() - start) / 1e9
    total = patients * per_patient
    say(f"    eventsourcing: wrote {total:,} events in {write_s:.1f} s; reading the log ...")

    recorder, mapper = app.recorder, app.mapper
    figures = {"es_log": {"events": total, "seconds": round(write_s, 2),
                          "events_per_s": round(total / write_s, 1)}}
    for decode in (False, True):
        start = now_ns()
        seen, after = 0, first_id
        while True:
            notes = recorder.select_notifications(start=after, limit=workload.rebuild_batch,
                                                  inclusive_of_start=False)
            if not notes:
                break
            if decode:
                for note in notes:
                    mapper.to_domain_event(note)
            seen += len(notes)
            after = notes[-1].id
        seconds = (now_ns() - start) / 1e9
        if seen != total:
            raise RuntimeError(f"eventsourcing: read {seen} notifications, not {total}")
        key = "es_read_log_decoded" if decode else "es_read_log"
        figures[key] = {
            "call": f"recorder.select_notifications(limit={workload.rebuild_batch}) pages"
                    + (" + mapper.to_domain_event" if decode else ""),
            "events": seen, "seconds": round(seconds, 2), "events_per_s": round(seen / seconds, 1),
        }

    chosen = [rng.choice(ids) for _ in range(WARMUP + workload.reads)]
    samples = []
    for index, patient_id in enumerate(progress(chosen, total=len(chosen), desc="es get patient")):
        start = now_ns()
        app.repository.get(patient_id)
        if index >= WARMUP:
            samples.append(now_ns() - start)
    figures["es_read_patient"] = {
        "call": f"repository.get (a {per_patient}-event patient, no snapshot)",
        **latency_summary(samples),
    }
    return figures


def database_info(app: PatientApp, backend: str) -> dict:
    """Return the settings that decide commit cost, as the library's connections see them."""
    if backend == "sqlite":
        with app.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA journal_mode")
            journal = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(cursor.fetchone()[0])
        return {"vendor": "sqlite", "journal_mode": journal, "synchronous": synchronous}
    with app.recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return {"vendor": "postgresql", "synchronous_commit": next(iter(cursor.fetchone().values()))}


def measure(backend: str, db: str, workload: Workload, scenarios: list[str]) -> dict:
    """Run the peer's scenarios that match `scenarios`; return its figures."""
    from importlib.metadata import version

    env = app_env(backend, db)
    app = PatientApp(env=env)  # creates the tables before any client process starts
    figures: dict = {}
    seconds: dict = {}
    steps = [
        ("service", lambda: commands(app, workload)),
        ("concurrent", lambda: concurrent_commands(env, workload)),
        ("bulk", lambda: bulk(app, workload)),
        ("load", lambda: loads(app, workload)),
        ("rebuild", lambda: log_scenarios(app, workload)),
    ]
    for name, step in steps:
        if name in scenarios or (name == "rebuild" and "reads" in scenarios):
            say(f"  eventsourcing: {name} ...")
            started = now_ns()
            figures |= step()
            seconds[name] = round((now_ns() - started) / 1e9, 2)
    info = database_info(app, backend)
    app.close()
    return {
        "library": f"eventsourcing {version('eventsourcing')}",
        "persistence": env["PERSISTENCE_MODULE"],
        "figures": figures, "scenario_seconds": seconds, "database": info,
    }
