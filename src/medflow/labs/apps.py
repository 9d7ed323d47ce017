from django.apps import AppConfig


class LabsConfig(AppConfig):
    name = "medflow.labs"
    label = "labs"

    def ready(self) -> None:
        from medflow.labs import process, projections  # noqa: F401  (register inline handlers)
