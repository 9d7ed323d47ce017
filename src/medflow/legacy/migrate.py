"""Turn legacy rows into events, through the application services (never by writing events).

Resumable and idempotent: every aggregate id is derived from its legacy table and row id, and the
row's entry in legacy_migration_map is written in the same transaction as its events, so a run
killed midway loses at most its uncommitted batch, and a rerun skips what was committed.

On PostgreSQL a batch commits without waiting for its WAL to reach the disk
(synchronous_commit off, for that transaction only), and the run ends with one commit that
waits for all of it: a server crash mid-run loses at most the last batches whole, events and
map entries together, and the rerun redoes them; a run that returns is on disk.

Order: clinics, patients, providers (staff users and memberships), encounters (started),
diagnoses, clinical notes, lab results, medications, vital signs, then encounters are ended
(nothing can be recorded on an ended encounter, so they end last).

With `workers` > 1, the steps from encounters on run in that many processes, each taking them in
order over its own range of patients (medflow.legacy.workers).

Two paths produce the same events: the batched one (default; medflow.legacy.batched) runs a
batch's commands in one unit of work and stores them with one multi-stream append; the per-row
one calls the application services row by row, a savepoint each (the reference, and what
`batched=False` runs).
"""

import os
from collections import Counter, defaultdict, namedtuple
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from tqdm import tqdm

from medflow.access import services as access
from medflow.access.models import ClinicReadModel, Membership
from medflow.clinical import services as clinical
from medflow.context import Context
from medflow.errors import MedflowError
from medflow.eventstore import store
from medflow.eventstore.backends import dialect
from medflow.eventstore.batch import UnitOfWork
from medflow.eventstore.commands import CommandResult
from medflow.labs import services as labs
from medflow.legacy import mapping as mp
from medflow.legacy import models as m
from medflow.legacy import workers
from medflow.legacy.batched import BatchSteps
from medflow.ops.garbage import fewer_collections
from medflow.patients.services import register_patient

ENCOUNTER_END = "legacy_encounters.end"
# legacy_state key: when the last run that stored anything finished (its durable last write).
FINISHED_KEY = "migrate_finished_at"
# The steps whose rows each belong to one patient, and touch only that patient's streams and
# rows: what worker processes may share out by patient (medflow.legacy.workers).
PATIENT_STEPS = frozenset({
    "legacy_encounters", "legacy_diagnoses", "legacy_clinical_notes", "legacy_lab_results",
    "legacy_medications", "legacy_vital_signs", ENCOUNTER_END,
})


@dataclass(frozen=True)
class Refusal:
    """A legacy row the domain refused, and why."""

    table: str
    row_id: str
    field: str | None
    code: str
    message: str


@dataclass
class MigrationReport:
    migrated: Counter = field(default_factory=Counter)
    already: Counter = field(default_factory=Counter)
    events: int = 0
    refusals: list[Refusal] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run, "events": self.events,
            "migrated": dict(self.migrated), "already_migrated": dict(self.already),
            "refused": [r.__dict__ for r in self.refusals],
        }


class _DryRun(Exception):
    pass


def _failpoint(done: int) -> None:
    # Test hook: MEDFLOW_FAILPOINT=legacy-after-rows:N kills the process after N rows were
    # migrated, before their batch committed, as a crash or `kill -9` would.
    spec = os.environ.get("MEDFLOW_FAILPOINT", "")
    if spec.startswith("legacy-after-rows:") and done == int(spec.split(":")[1]):
        os._exit(70)


class Migrator:
    """Migrate every legacy row not migrated yet; see the module docstring."""

    def __init__(self, *, batch_size: int = 1000, dry_run: bool = False, progress: bool = False,
                 only_since: datetime | None = None, batched: bool = True,
                 workers: int = 1) -> None:
        self.batch_size = max(1, batch_size)
        self.dry_run, self.progress, self.only_since = dry_run, progress, only_since
        self.batched = batched
        self.workers = max(1, workers)
        self.batch_steps = BatchSteps(self)
        self.report = MigrationReport(dry_run=dry_run)
        self.base = Context(user_id=None, username="legacy-migration", role="system",
                            reason="legacy migration")
        self.done = 0
        self._users: dict[str, Any] = {}
        self._clinic_of_patient: dict[str, UUID] = {}
        self._providers: dict[str, str | None] = {}

    # Plumbing ---------------------------------------------------------------------------------

    def steps(self) -> list[tuple[str, Any, Callable[[Any], list[CommandResult]], tuple[str, ...]]]:
        return [
            ("legacy_clinics", m.Clinic.objects.all(), self.clinic, ("id",)),
            ("legacy_patients", m.Patient.objects.all(), self.patient, ("id",)),
            ("legacy_providers", m.Provider.objects.all(), self.provider, ("id",)),
            ("legacy_encounters", m.Encounter.objects.all(), self.encounter, ("start", "id")),
            ("legacy_diagnoses", m.Diagnosis.objects.all(), self.diagnosis, ("start", "id")),
            ("legacy_clinical_notes", m.ClinicalNote.objects.all(), self.note, ("written_at", "id")),
            ("legacy_lab_results", m.LabResult.objects.all(), self.lab_result,
             ("effective_at", "patient_id", "id")),
            ("legacy_medications", m.Medication.objects.all(), self.medication, ("start", "id")),
            ("legacy_vital_signs", m.VitalSigns.objects.all(), self.vital_signs,
             ("measured_at", "id")),
            (ENCOUNTER_END, m.Encounter.objects.filter(stop__isnull=False), self.encounter_end,
             ("start", "id")),
        ]

    def run(self) -> MigrationReport:
        """Migrate what is left; with dry_run, do it all and roll it back."""
        # Batches commit one by one; a dry run wraps them all in a transaction it rolls back.
        try:
            with transaction.atomic() if self.dry_run else nullcontext(), fewer_collections():
                self._default_clinic()
                steps = self.steps()
                _analyze({rows.model for _, rows, _, _ in steps})
                shared = []
                for table, rows, convert, order in steps:
                    if self.only_since is not None and table != ENCOUNTER_END:
                        rows = rows.filter(updated_at__gt=self.only_since)
                    if self._in_workers(table):
                        # The steps by patient come last: the workers take them all together.
                        shared.append((table, rows, order, convert))
                    else:
                        self._table(table, rows, order, convert)
                if shared:
                    self._tables_in_workers(shared)
                if self.dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        if not self.dry_run and (self.report.events or any(self.report.migrated.values())):
            _flush_commits()
        return self.report

    def _table(self, table: str, rows, order: tuple[str, ...], convert) -> None:
        bar = self._bar(table, rows)
        try:
            self._rows(table, rows, order, convert, bar.update)
        finally:
            bar.close()

    def _bar(self, table: str, rows) -> tqdm:
        """Count what the table has migrated already, and return its progress bar."""
        self.report.already[table] += m.MigrationMap.objects.filter(legacy_table=table).count()
        return tqdm(total=_pending(table, rows).count(), desc=table, unit=" rows",
                    disable=not self.progress)

    def _in_workers(self, table: str) -> bool:
        """Tell whether this step runs in worker processes: asked for, a step by patient, on the
        batched path, and outside any transaction (a dry run's, or a caller's, would not be
        the workers')."""
        return (self.workers > 1 and self.batched and table in PATIENT_STEPS
                and _outside_transactions() and workers.can_fork())

    def _tables_in_workers(self, steps: list[tuple[str, Any, tuple[str, ...], Any]]) -> None:
        """Migrate the steps by patient in worker processes, each over its own range of patients.

        Each worker takes the steps in order for its patients, never waiting for the others
        between steps: whatever a step needs of an earlier one (a patient's encounters, their
        orders) belongs to the same patient, so the same worker made it.
        """
        bars = {table: self._bar(table, rows) for table, rows, _, _ in steps}
        # Users are made before the workers start, so that no two make the same one.
        self.preload_users([
            None, *m.Encounter.objects.values_list("provider_id", flat=True).distinct(),
            *m.ClinicalNote.objects.values_list("provider_id", flat=True).distinct(),
        ])
        # Bounds in the database's order: the workers' queries compare ids with its collation.
        ranges = workers.patient_ranges(
            m.Patient.objects.order_by("id").values_list("id", flat=True), self.workers)

        def work(part: int, rows_done: Callable[[Any], None]) -> MigrationReport:
            first, after = ranges[part]
            self.report = MigrationReport(dry_run=self.dry_run)
            for table, rows, order, convert in steps:
                mine = rows if first is None else rows.filter(patient_id__gte=first)
                mine = mine if after is None else mine.filter(patient_id__lt=after)
                self._rows(table, mine, order, convert,
                           lambda done, table=table: rows_done((table, done)))
            return self.report

        try:
            for part in workers.run(work, len(ranges), lambda done: bars[done[0]].update(done[1])):
                self.report.migrated.update(part.migrated)
                self.report.events += part.events
                self.report.refusals += part.refusals
                self.done += sum(part.migrated.values()) + len(part.refusals)
        finally:
            for bar in bars.values():
                bar.close()

    def _rows(self, table: str, rows, order: tuple[str, ...], convert,
              rows_done: Callable[[int], None]) -> None:
        """Migrate the rows not migrated yet, a batch (one transaction) at a time."""
        # Rows are read as tuples and made records with the models' attribute names: building
        # model instances took a twentieth of the migration. Nothing converts updated_at (only
        # `only_since` filters on it): not read, not parsed.
        names = tuple(f.attname for f in rows.model._meta.concrete_fields
                      if f.attname != "updated_at")
        in_order = rows.order_by(*order).values_list(*names)
        # Whether each batch's transaction is its own (not a caller's, a dry run's, or one that
        # autocommit off leaves open).
        own = _outside_transactions()
        for batch in _pages(in_order, order, self.batch_size, lambda ids: _mapped(table, ids),
                            _record_type(rows.model, names)._make):
            if self.batched:
                with transaction.atomic():
                    if own:
                        _commit_without_waiting()
                    self._batch(table, batch)
                rows_done(len(batch))
                continue
            # One transaction per batch, a savepoint per row: a refused row leaves the others.
            with transaction.atomic():
                if own:
                    _commit_without_waiting()
                for row in batch:
                    self._row(table, row, convert)
                    self.done += 1
                    _failpoint(self.done)
            rows_done(len(batch))

    def _batch(self, table: str, rows: list) -> None:
        """Migrate a batch of rows in one unit of work; report refused rows, store the rest.

        A refused row is left out. When it had changed an aggregate before it was refused, the
        batch starts over without it (from the stored state). Should storing fail (a refusal
        only a later check makes), the batch is split in halves until the row is found.
        """
        prepare, convert = self.batch_steps.for_table(table)
        done_before = self.done
        while True:
            self.done = done_before
            uow = UnitOfWork()
            lookups = prepare(uow, rows)
            converted: list[tuple[Any, UUID, int, int, int]] = []
            refused: list[tuple[Any, MedflowError]] = []
            for row in rows:
                mark = len(uow.staged)
                try:
                    main, own = convert(uow, lookups, row)
                except MedflowError as exc:
                    refused.append((row, exc))
                    if uow.spoiled or len(uow.staged) != mark:
                        break
                else:
                    converted.append((row, main, mark, len(uow.staged), own))
                self.done += 1
                _failpoint(self.done)
            else:
                break
            # Start over without the refused rows (reported here, never tried again).
            for row, exc in refused:
                self._refuse(table, row, exc)
            gone = {id(row) for row, _ in refused}
            rows = [row for row in rows if id(row) not in gone]
        try:
            with transaction.atomic():
                # The map first: the commit's append holds the log's order lock until the
                # transaction ends, and the workers' batches wait for it.
                _map_rows(table, [
                    (row.id, main, uow.staged[start:end][own].event_id if end > start else None)
                    for row, main, start, end, own in converted
                ])
                uow.commit()
        except (MedflowError, IntegrityError) as exc:
            if len(converted) == 1 and isinstance(exc, MedflowError):
                self._refuse(table, converted[0][0], exc)
            elif len(converted) <= 1:
                raise
            else:
                half = len(converted) // 2
                self.done = done_before
                for part in ([r for r, *_ in converted[:half]], [r for r, *_ in converted[half:]]):
                    self._batch(table, part)
            for row, exc in refused:
                self._refuse(table, row, exc)
            return
        for row, exc in refused:
            self._refuse(table, row, exc)
        for _row, _, start, end, _own in converted:
            self.report.migrated[table] += 1
            self.report.events += end - start

    def _refuse(self, table: str, row: Any, exc: MedflowError) -> None:
        self.report.refusals.append(Refusal(table, row.id, exc.field, exc.code, exc.message))

    def _row(self, table: str, row: Any, convert) -> None:
        try:
            with transaction.atomic():
                results = convert(row)
                events = [e for r in results for e in r.events]
                main = results[0] if results else None
                m.MigrationMap.objects.create(
                    legacy_table=table, legacy_id=row.id,
                    aggregate_id=main.aggregate_id if main else mp.aggregate_id(table, row.id),
                    event_id=events[0].id if events else None)
        except MedflowError as exc:
            self.report.refusals.append(Refusal(table, row.id, exc.field, exc.code, exc.message))
            return
        self.report.migrated[table] += 1
        self.report.events += len(events)

    def ctx(self, table: str, row_id: str, when: datetime | None, user: Any = None,
            reason: str = "legacy migration") -> Context:
        extra = {"legacy_table": table, "legacy_id": row_id}
        if user is None:
            return replace(self.base, effective_time=when, reason=reason, extra=extra)
        return replace(self.base, effective_time=when, reason=reason, extra=extra,
                       user_id=user.pk, username=user.username)

    def user(self, provider_id: str | None) -> Any:
        """Return the staff user of a legacy provider, or the import account."""
        username = mp.provider_username(provider_id) if provider_id else mp.IMPORT_USERNAME
        if username not in self._users:
            user, created = get_user_model().objects.get_or_create(username=username)
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            self._users[username] = user
        return self._users[username]

    def preload_users(self, provider_ids: Iterable[str | None]) -> None:
        """Fetch (and create) the staff users of these providers with a few queries."""
        names = {mp.provider_username(p) if p else mp.IMPORT_USERNAME for p in provider_ids}
        names -= set(self._users)
        if not names:
            return
        model = get_user_model()
        found = {u.username: u for u in model.objects.filter(username__in=names)}
        new = []
        for name in sorted(names - set(found)):
            user = model(username=name)
            user.set_unusable_password()
            new.append(user)
        model.objects.bulk_create(new)
        # Read back, so that every user has its primary key on every backend.
        found |= {u.username: u for u in model.objects.filter(username__in=[u.username for u in new])}
        self._users.update(found)

    def name_users(self, rows: Iterable[m.Provider]) -> None:
        """Give providers' users the providers' names."""
        changed = []
        for row in rows:
            user = self.user(row.id)
            first, _, last = row.name.partition(" ")
            if (user.first_name, user.last_name) != (first[:150], last[:150]):
                user.first_name, user.last_name = first[:150], last[:150]
                changed.append(user)
        get_user_model().objects.bulk_update(changed, ["first_name", "last_name"], batch_size=500)

    def clinic_of_row(self, row: m.Patient) -> UUID:
        """Return the clinic a legacy patient row goes to."""
        return mp.aggregate_id("legacy_clinics", row.clinic_id or mp.DEFAULT_CLINIC)

    def preload_encounter_users(self, encounter_ids: Iterable[str | None]) -> None:
        """Learn the providers of these encounters, and fetch their users, with a few queries."""
        wanted = {e for e in encounter_ids if e and e not in self._providers}
        rows = m.Encounter.objects.filter(id__in=wanted).values_list("id", "provider_id")
        self._providers.update(dict.fromkeys(wanted) | dict(rows))
        self.preload_users([None, *(self._providers[e] for e in wanted)])

    def encounter_user(self, encounter_id: str | None) -> Any:
        """Return the staff user of an encounter's provider, or the import account."""
        return self._encounter_user(encounter_id)

    def clinic_of(self, patient_id: str) -> UUID:
        if patient_id not in self._clinic_of_patient:
            clinic = m.Patient.objects.filter(id=patient_id).values_list("clinic_id", flat=True).first()
            self._clinic_of_patient[patient_id] = mp.aggregate_id("legacy_clinics",
                                                                  clinic or mp.DEFAULT_CLINIC)
        return self._clinic_of_patient[patient_id]

    def _grant(self, clinic_id: UUID, user: Any, role: str = "doctor") -> list[CommandResult]:
        if Membership.objects.filter(clinic_id=clinic_id, user=user, role=role).exists():
            return []
        return [access.grant_role(self.base, clinic_id, user.username, role)]

    def _default_clinic(self) -> None:
        # Patients whose organization is unknown go to one clinic of their own.
        clinic_id = mp.aggregate_id("legacy_clinics", mp.DEFAULT_CLINIC)
        if not ClinicReadModel.objects.filter(id=clinic_id).exists() and m.Patient.objects.filter(
                clinic__isnull=True).exists():
            access.create_clinic(self.base, "Legacy patients without a clinic", "legacy-none",
                                 clinic_id=clinic_id)
            self._grant(clinic_id, self.user(None))

    # Tables -----------------------------------------------------------------------------------

    def clinic(self, row: m.Clinic) -> list[CommandResult]:
        ctx = self.ctx("legacy_clinics", row.id, None)
        clinic_id = mp.aggregate_id("legacy_clinics", row.id)
        results = [access.create_clinic(ctx, row.name, f"legacy-{row.id}"[:40], clinic_id=clinic_id)]
        # The import account is a doctor everywhere: it signs for rows that name no provider.
        return results + self._grant(clinic_id, self.user(None))

    def patient(self, row: m.Patient) -> list[CommandResult]:
        ctx = self.ctx("legacy_patients", row.id, None)
        return [register_patient(ctx, clinic_id=self.clinic_of(row.id),
                                 patient_id=mp.aggregate_id("legacy_patients", row.id),
                                 **mp.patient_fields(row))]

    def provider(self, row: m.Provider) -> list[CommandResult]:
        """Create the provider's user; a doctor of their clinic and of their patients' clinics."""
        user = self.user(row.id)
        first, _, last = row.name.partition(" ")
        if (user.first_name, user.last_name) != (first[:150], last[:150]):
            user.first_name, user.last_name = first[:150], last[:150]
            user.save(update_fields=["first_name", "last_name"])
        clinics = set(_patient_clinics(row.id))
        if row.clinic_id:
            clinics.add(mp.aggregate_id("legacy_clinics", row.clinic_id))
        ctx = self.ctx("legacy_providers", row.id, None)
        results = []
        for clinic_id in sorted(clinics, key=str):
            if not Membership.objects.filter(clinic_id=clinic_id, user=user).exists():
                results.append(access.grant_role(ctx, clinic_id, user.username, "doctor"))
        return results

    def encounter(self, row: m.Encounter) -> list[CommandResult]:
        user = self.user(row.provider_id)
        ctx = self.ctx("legacy_encounters", row.id, row.start, user)
        return [clinical.start_encounter(
            ctx, patient_id=mp.aggregate_id("legacy_patients", row.patient_id), provider_id=user.pk,
            kind=mp.ENCOUNTER_KINDS.get(row.encounter_class.lower(), "ambulatory"),
            reason=mp.encounter_reason(row), started_at=row.start,
            encounter_id=mp.aggregate_id("legacy_encounters", row.id))]

    def encounter_end(self, row: m.Encounter) -> list[CommandResult]:
        ctx = self.ctx(ENCOUNTER_END, row.id, row.stop, self.user(row.provider_id))
        encounter_id = mp.aggregate_id("legacy_encounters", row.id)
        return [clinical.end_encounter(ctx, encounter_id, ended_at=row.stop)]

    def _encounter_user(self, encounter_id: str | None) -> Any:
        if encounter_id is None:
            return self.user(None)
        if encounter_id not in self._providers:
            self._providers[encounter_id] = m.Encounter.objects.filter(id=encounter_id).values_list(
                "provider_id", flat=True).first()
        return self.user(self._providers[encounter_id])

    @staticmethod
    def _encounter(encounter_id: str | None) -> UUID | None:
        return mp.aggregate_id("legacy_encounters", encounter_id) if encounter_id else None

    def diagnosis(self, row: m.Diagnosis) -> list[CommandResult]:
        user = self._encounter_user(row.encounter_id)
        diagnosis_id = mp.aggregate_id("legacy_diagnoses", row.id)
        started = datetime.combine(row.start, datetime.min.time()).replace(hour=12, tzinfo=UTC)
        results = [clinical.add_diagnosis(
            self.ctx("legacy_diagnoses", row.id, started, user),
            patient_id=mp.aggregate_id("legacy_patients", row.patient_id), code_system="SNOMED CT",
            code=row.code, display=row.description[:200], onset_date=row.start,
            encounter_id=self._encounter(row.encounter_id), diagnosis_id=diagnosis_id)]
        if row.stop:
            stopped = datetime.combine(row.stop, datetime.min.time()).replace(hour=12, tzinfo=UTC)
            results.append(clinical.resolve_diagnosis(
                self.ctx("legacy_diagnoses", row.id, stopped, user), diagnosis_id,
                resolved_on=row.stop))
        return results

    def note(self, row: m.ClinicalNote) -> list[CommandResult]:
        user = self.user(row.provider_id) if row.provider_id else self._encounter_user(
            row.encounter_id)
        ctx = self.ctx("legacy_clinical_notes", row.id, row.written_at, user)
        note_id = mp.aggregate_id("legacy_clinical_notes", row.id)
        drafted = clinical.draft_note(
            ctx, patient_id=mp.aggregate_id("legacy_patients", row.patient_id), subjective=row.text,
            encounter_id=self._encounter(row.encounter_id), note_id=note_id)
        return [drafted, clinical.sign_note(ctx, note_id)]

    def lab_result(self, row: m.LabResult) -> list[CommandResult]:
        user = self._encounter_user(row.encounter_id)
        ctx = self.ctx("legacy_lab_results", row.id, row.effective_at, user)
        patient_id = mp.aggregate_id("legacy_patients", row.patient_id)
        encounter_id = self._encounter(row.encounter_id)
        # As the batched path checks: the results of an encounter hang on that encounter's order.
        clinical.check_encounter(patient_id, encounter_id, open_only=False)
        order_id = mp.lab_order_id(row.patient_id, row.encounter_id, row.effective_at)
        results = []
        if store.current_version(order_id) == 0:
            results.append(labs.place_lab_order(
                ctx, patient_id, tests=[{"loinc_code": row.loinc_code, "display": row.display}],
                encounter_id=encounter_id, order_id=order_id, ordering_provider_id=user.pk))
        recorded = labs.record_lab_result(ctx, order_id, result_id=mp.aggregate_id(
            "legacy_lab_results", row.id), **mp.lab_fields(row))
        # The row maps to its result: its event comes first in the list.
        return [replace(recorded, aggregate_id=mp.aggregate_id("legacy_lab_results", row.id)),
                *results]

    def medication(self, row: m.Medication) -> list[CommandResult]:
        user = self._encounter_user(row.encounter_id)
        prescription_id = mp.aggregate_id("legacy_medications", row.id)
        results = [clinical.prescribe_medication(
            self.ctx("legacy_medications", row.id, row.start, user),
            patient_id=mp.aggregate_id("legacy_patients", row.patient_id),
            encounter_id=self._encounter(row.encounter_id), prescription_id=prescription_id,
            **mp.medication_fields(row))]
        if row.stop:
            results.append(clinical.discontinue_medication(
                self.ctx("legacy_medications", row.id, row.stop, user), prescription_id,
                reason="stopped (legacy record)"))
        return results

    def vital_signs(self, row: m.VitalSigns) -> list[CommandResult]:
        user = self._encounter_user(row.encounter_id)
        ctx = self.ctx("legacy_vital_signs", row.id, row.measured_at, user)
        return [clinical.record_vital_signs(
            ctx, patient_id=mp.aggregate_id("legacy_patients", row.patient_id),
            measured_at=row.measured_at, encounter_id=self._encounter(row.encounter_id),
            **mp.vital_values(row))]


def _outside_transactions() -> bool:
    """Tell whether a transaction begun here would be this process's own: no atomic block open
    and autocommit on (as `commands.execute` checks)."""
    return not connection.in_atomic_block and connection.get_autocommit()


def _commit_without_waiting() -> None:
    """Let the batch's own transaction commit on PostgreSQL without waiting for its WAL to be
    flushed.

    Each batch then stops holding the log's order lock through a disk flush (the workers' batches
    wait for that lock), and the WAL writer flushes many batches at once. A crash loses whole
    transactions only, the latest ones, in order (PostgreSQL's asynchronous commit), so the map
    never names an event that is gone; `_flush_commits` makes a finished run durable."""
    with connection.cursor() as cursor:
        dialect().commit_without_waiting(cursor)


def _flush_commits() -> None:
    """Wait until every batch committed so far is on disk: commit, synchronously, a transaction
    that writes (the time the run finished), which flushes the WAL up to its own commit record,
    after every batch's. (A transaction that writes nothing commits without a flush.)"""
    if connection.vendor != "postgresql" or not _outside_transactions():
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = on")
        m.State.objects.update_or_create(key=FINISHED_KEY,
                                         defaults={"value": timezone.now().isoformat()})


def _analyze(models: Iterable[type]) -> None:
    """Give PostgreSQL's planner statistics of the legacy tables (PostgreSQL only).

    Tables just loaded, or restored from a dump, have none until autovacuum comes by (when it
    is on at all), and without them the planner sorts a whole table for every page.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in sorted(models, key=lambda model: model._meta.db_table):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def _pending(table: str, rows):
    """Return the rows of `table` that have no map entry yet."""
    mapped = m.MigrationMap.objects.filter(legacy_table=table)
    return rows.exclude(Exists(mapped.filter(legacy_id=OuterRef("id"))))


def _mapped(table: str, legacy_ids: list[str]) -> set[str]:
    """Return which of these rows of `table` are migrated already."""
    if connection.vendor == "postgresql":
        # One probe of the map's (table, id) key per row. The map grows all through a step, so
        # its statistics always lag: planned from them, the lookup reads every entry of the table
        # (42 ms a page at 100x). OFFSET 0 keeps the LATERAL subquery a per-row probe.
        with store.binding_cursor() as cursor:
            cursor.execute(
                "SELECT x.id FROM unnest(%b::text[]) AS x (id) CROSS JOIN LATERAL (SELECT 1"
                " FROM legacy_migration_map WHERE legacy_table = %b AND legacy_id = x.id"
                " OFFSET 0) found",
                [legacy_ids, table],
            )
            return {row[0] for row in cursor.fetchall()}
    return set(m.MigrationMap.objects.filter(legacy_table=table, legacy_id__in=legacy_ids)
               .values_list("legacy_id", flat=True))


@cache
def _record_type(model: type, names: tuple[str, ...]) -> type:
    """Return the record type of a legacy table's rows: a named tuple of these attributes."""
    return namedtuple(f"Legacy{model.__name__}", names)


def _pages(rows, order: tuple[str, ...], size: int, done: Callable[[list[str]], set[str]],
           make: Callable[[Any], Any] | None = None) -> Iterator[list]:
    """Yield the rows not `done` yet, up to `size` at a time, in `order` (whose last column is
    unique), each page read after the previous one was migrated, so that a large table is never
    held in memory. `make` turns each row the query returns into the record yielded.

    A page is a range of the order's index; its migrated rows are then looked up by id. (With
    the map in the page query, as NOT EXISTS, the planner hashes the whole map whenever its
    statistics lag behind the migration: 40 ms a page at 10x, growing with the map.)
    """
    last: tuple | None = None
    while True:
        page = rows
        if last is not None:
            # Keyset pagination: the rows after the last one read, in the order given.
            after = Q(**{f"{order[-1]}__gt": last[-1]})
            for depth in range(len(order) - 2, -1, -1):
                after = Q(**{f"{order[depth]}__gt": last[depth]}) | (
                    Q(**{order[depth]: last[depth]}) & after)
            if len(order) > 1:
                # Redundant, but where an index on `order` starts its range scan.
                after = Q(**{f"{order[0]}__gte": last[0]}) & after
            page = rows.filter(after)
        batch = list(page[:size]) if make is None else [make(row) for row in page[:size]]
        if not batch:
            return
        last = tuple(getattr(batch[-1], column) for column in order)
        skip = done([row.id for row in batch])
        left = [row for row in batch if row.id not in skip] if skip else batch
        if left:
            yield left


def _map_rows(table: str, rows: list[tuple[str, UUID, UUID | None]]) -> None:
    """Record which aggregate and event each legacy row became (legacy id, aggregate, event)."""
    if not rows:
        return
    now = timezone.now()
    if connection.vendor == "postgresql":
        with store.binding_cursor() as cursor:
            cursor.execute(
                "INSERT INTO legacy_migration_map (legacy_table, legacy_id, aggregate_id, event_id,"
                " migrated_at) SELECT %b, l, a, e, %b FROM unnest(%b::text[], %b::uuid[],"
                " %b::uuid[]) AS x (l, a, e)",
                [table, now, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
            )
        return
    m.MigrationMap.objects.bulk_create(
        [m.MigrationMap(legacy_table=table, legacy_id=legacy_id, aggregate_id=aggregate_id,
                        event_id=event_id, migrated_at=now)
         for legacy_id, aggregate_id, event_id in rows], batch_size=500)


def _patient_clinics(provider_id: str) -> Iterable[UUID]:
    """Return the clinics of the patients a provider saw or wrote about."""
    clinics: dict[str, None] = defaultdict(lambda: None)
    for source in (m.Encounter, m.ClinicalNote):
        for clinic in source.objects.filter(provider_id=provider_id).values_list(
                "patient__clinic_id", flat=True).distinct():
            clinics[clinic or mp.DEFAULT_CLINIC] = None
    return [mp.aggregate_id("legacy_clinics", c) for c in clinics]


def migrate(*, batch_size: int = 1000, dry_run: bool = False, progress: bool = False,
            only_since: datetime | None = None, batched: bool = True,
            workers: int = 1) -> MigrationReport:
    """Migrate the legacy rows not migrated yet; return what was done and what was refused.

    `workers` > 1 runs the steps by patient in that many processes (see
    medflow.legacy.workers); the others, and a dry run, run here.
    """
    return Migrator(batch_size=batch_size, dry_run=dry_run, progress=progress,
                    only_since=only_since, batched=batched, workers=workers).run()
