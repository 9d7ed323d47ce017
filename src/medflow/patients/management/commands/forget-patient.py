import uuid

from django.core.management.base import BaseCommand, CommandError

from medflow.context import system_context
from medflow.errors import MedflowError
from medflow.patients.services import forget_patient


class Command(BaseCommand):
    help = (
        "Erase a patient's personal data for good (GDPR Art. 17): destroys their data key, purges"
        " read models, snapshots and cache, records PatientForgotten. Refused inside a retention"
        " period unless --override-retention."
    )

    def add_arguments(self, parser):
        parser.add_argument("patient_id")
        parser.add_argument("--reason", required=True, help="why (recorded on the event)")
        parser.add_argument("--override-retention", action="store_true",
                            help="forget even though records are inside their retention period")

    def handle(self, *args, patient_id, reason, override_retention, **options):
        try:
            patient = uuid.UUID(patient_id)
        except ValueError:
            raise CommandError(f"patient_id: {patient_id!r} is not a UUID") from None
        try:
            result = forget_patient(system_context(reason), patient, reason=reason,
                                    override_retention=override_retention)
        except MedflowError as exc:
            raise CommandError(f"{exc.field or 'patient'}: {exc.message}") from exc
        self.stdout.write(f"forgot patient {patient} (stream now at version {result.version})")
