from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "medflow.audit"
    label = "audit"
