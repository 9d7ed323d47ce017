from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "medflow.access"
    label = "access"

    def ready(self) -> None:
        from medflow.access import projections  # noqa: F401  (registers inline handlers)
