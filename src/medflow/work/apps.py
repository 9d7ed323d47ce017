from django.apps import AppConfig


class WorkConfig(AppConfig):
    name = "medflow.work"
    label = "work"
