from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "medflow.demo"
    label = "demo"
