from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "medflow.ops"
    label = "ops"
