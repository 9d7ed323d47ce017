"""What the ops app does once Django has started."""

import gc

from django.contrib.auth.models import User


def test_start_up_objects_are_left_out_of_garbage_collection():
    # Django's own classes, loaded before the apps were ready, sit in the permanent generation:
    # the collector's full passes no longer walk them.
    assert gc.get_freeze_count() > 10_000
    assert not any(obj is User for obj in gc.get_objects())
