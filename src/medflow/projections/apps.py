from django.apps import AppConfig


class ProjectionsConfig(AppConfig):
    name = "medflow.projections"
    label = "projections"
