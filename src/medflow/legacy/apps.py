from django.apps import AppConfig


class LegacyConfig(AppConfig):
    name = "medflow.legacy"
    label = "legacy"
