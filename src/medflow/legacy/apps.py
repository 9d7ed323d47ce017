"""Legacy context: the old CRUD system's tables and the migration of their rows into events."""
from django.apps import AppConfig


class LegacyConfig(AppConfig):
    name = "medflow.legacy"
    label = "legacy"

    def ready(self) -> None:
        from medflow.eventstore.handlers import inline
        from medflow.legacy import dual_write

        # Registered always, active only while settings.MEDFLOW_DUAL_WRITE is on (checked per event).
        if dual_write.on_event not in inline._every:
            inline.on_every(dual_write.on_event)
