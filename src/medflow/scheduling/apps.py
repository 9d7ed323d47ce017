from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "medflow.scheduling"
    label = "scheduling"
