from django.apps import AppConfig


class EventStoreConfig(AppConfig):
    name = "medflow.eventstore"
    label = "eventstore"
    verbose_name = "Event store"
