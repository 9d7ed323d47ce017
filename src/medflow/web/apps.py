from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "medflow.web"
    label = "web"
