from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "medflow.scheduling"
    label = "scheduling"

    def ready(self) -> None:
        from medflow.scheduling import (  # noqa: F401  (registers inline handlers)
            process,
            projections,
        )
