from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "medflow.patients"
    label = "patients"

    def ready(self) -> None:
        from medflow.patients import projections  # noqa: F401  (registers inline handlers)
