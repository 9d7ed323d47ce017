from django.apps import AppConfig


class WorkConfig(AppConfig):
    name = "medflow.work"
    label = "work"

    def ready(self) -> None:
        from medflow.work import projections  # noqa: F401  (registers inline handlers)
