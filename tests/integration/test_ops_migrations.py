"""Every migration reverses: all apps migrate to zero (dependents first) and back again."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

pytestmark = pytest.mark.django_db(transaction=True)


def apps_in_dependency_order() -> list[str]:
    loader = MigrationLoader(connection)
    order: list[str] = []
    for leaf in sorted(loader.graph.leaf_nodes()):
        for app, _ in loader.graph.forwards_plan(leaf):
            if app not in order:
                order.append(app)
    return order


def test_every_app_migrates_to_zero_and_back():
    apps = apps_in_dependency_order()
    assert {"eventstore", "patients", "projections", "audit"} <= set(apps)
    for app in reversed(apps):
        call_command("migrate", app, "zero", verbosity=0, interactive=False)
    left = set(connection.introspection.table_names()) - {"django_migrations"}
    assert not left, f"tables left after migrating to zero: {sorted(left)}"
    call_command("migrate", verbosity=0, interactive=False)
    tables = set(connection.introspection.table_names())
    assert {"event_store", "streams", "patient_read_model"} <= tables
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
