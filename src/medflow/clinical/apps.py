from django.apps import AppConfig


class ClinicalConfig(AppConfig):
    name = "medflow.clinical"
    label = "clinical"

    def ready(self) -> None:
        from medflow.clinical import projections  # noqa: F401  (registers inline handlers)
