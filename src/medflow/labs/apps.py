from django.apps import AppConfig


class LabsConfig(AppConfig):
    name = "medflow.labs"
    label = "labs"
