"""Bulk jobs run with fewer young garbage collections, and give the thresholds back."""

import gc

import pytest

from medflow.ops.garbage import BULK_YOUNG_THRESHOLD, fewer_collections


def test_the_young_threshold_is_raised_inside_and_restored_after_even_on_error():
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == (BULK_YOUNG_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("stop")
    assert gc.get_threshold() == before


def test_a_higher_threshold_set_by_the_caller_is_kept():
    before = gc.get_threshold()
    try:
        gc.set_threshold(10 * BULK_YOUNG_THRESHOLD, *before[1:])
        with fewer_collections():
            assert gc.get_threshold()[0] == 10 * BULK_YOUNG_THRESHOLD
    finally:
        gc.set_threshold(*before)
