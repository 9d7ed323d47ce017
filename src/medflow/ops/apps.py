"""Operations: health, metrics, backups, partitions, slow-query log."""
from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "medflow.ops"
    label = "ops"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from medflow.eventstore import store
        from medflow.ops import metrics, partitions, slowlog, timeparsing

        if metrics.observe_append not in store.append_observers:
            store.append_observers.append(metrics.observe_append)
        connection_created.connect(slowlog.install, dispatch_uid="medflow-ops-slow-query-log")
        timeparsing.connect()
        post_migrate.connect(partitions.after_migrate, sender=self,
                             dispatch_uid="medflow-ops-partitions-ensure")
        _handle_pool_timeouts_in_api()
        _freeze_startup_objects()


def _freeze_startup_objects() -> None:
    """Leave what start-up loaded (Django, the API, the models: several hundred thousand
    objects that live as long as the process) out of every future garbage collection.

    The collector's full passes walk every tracked object. A write path allocates thousands of
    short-lived dicts and event objects per batch, which trigger those passes; with the
    start-up objects in them a bulk append spent about a quarter of its client CPU there
    (35 -> 26 µs an event when frozen, bench/RESULTS.md). Frozen objects are never freed,
    which costs nothing for objects that live as long as the process anyway.
    """
    import gc

    gc.freeze()


def _handle_pool_timeouts_in_api() -> None:
    """Let the REST API answer 503 database_busy too: ninja catches view exceptions itself."""
    from django.db import OperationalError

    from medflow.api import api
    from medflow.ops.middleware import database_busy_response, is_pool_timeout

    def on_operational_error(request, exc):
        if is_pool_timeout(exc):
            return database_busy_response()
        raise exc

    api.add_exception_handler(OperationalError, on_operational_error)
