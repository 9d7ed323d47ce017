from django.apps import AppConfig


class ClinicalConfig(AppConfig):
    name = "medflow.clinical"
    label = "clinical"
