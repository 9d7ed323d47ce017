from django.apps import AppConfig


class TimelineConfig(AppConfig):
    name = "medflow.timeline"
    label = "timeline"

    def ready(self) -> None:
        from medflow.timeline import projections  # noqa: F401  (registers inline handlers)
