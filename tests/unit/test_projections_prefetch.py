"""A rebuild's pages read ahead by a thread: in order, with the caller's windows, errors passed
on, and a run that goes otherwise read by the caller."""

import threading

import pytest

from medflow.projections.pages import Page
from medflow.projections.prefetch import PageReader, pages_ahead

HEAD = 30


def _log(calls: list):
    """Return a read function over a log of HEAD positions, one event per position."""

    def read(after: int, window: int) -> Page:
        calls.append((after, window, threading.current_thread().name))
        upper = min(after + window, HEAD)
        return Page(list(range(after + 1, upper + 1)), upper, upper >= HEAD)

    return read


def _grow(window: int, applied: int) -> int:
    return window + applied


def test_pages_come_in_order_with_the_windows_the_caller_works_out():
    calls: list = []
    with pages_ahead(_log(calls), 0, 2, _grow) as reader:
        taken, after, window, last = [], 0, 2, False
        while not last:
            page = reader.take(after, window)
            taken.extend(page.events)
            after, window, last = page.read_to, _grow(window, len(page.events)), page.last
    assert taken == list(range(1, HEAD + 1))
    assert [(a, w) for a, w, _ in calls] == [(0, 2), (2, 4), (6, 8), (14, 16)]
    assert {name for _, _, name in calls} == {"medflow-page-reader"}


def test_a_page_the_thread_did_not_foresee_is_read_by_the_caller_from_then_on():
    calls: list = []
    with pages_ahead(_log(calls), 0, 5, lambda w, n: w) as reader:
        assert reader.take(0, 5).events == [1, 2, 3, 4, 5]
        # Another rebuild moved the checkpoints meanwhile: the next page starts elsewhere.
        page = reader.take(12, 5)
        assert page.events == [13, 14, 15, 16, 17]
        assert not reader.reading_ahead
        assert reader.take(17, 5).events == [18, 19, 20, 21, 22]
    assert calls[-2][:2] == (12, 5) and calls[-2][2] != "medflow-page-reader"
    assert calls[-1][:2] == (17, 5) and calls[-1][2] != "medflow-page-reader"


def test_an_error_in_the_thread_reaches_the_caller_and_stops_the_thread():
    def read(after: int, window: int) -> Page:
        if after >= 4:
            raise ValueError("the log is unreadable")
        return Page([after + 1, after + 2], after + 2, False)

    reader = PageReader(read, 0, 2, lambda w, n: w)
    try:
        assert reader.take(0, 2).read_to == 2
        assert reader.take(2, 2).read_to == 4
        with pytest.raises(ValueError, match="unreadable"):
            reader.take(4, 2)
        assert not reader.reading_ahead
    finally:
        reader.close()


def test_closing_stops_a_thread_that_waits_for_room_in_the_queue():
    calls: list = []

    def endless(after: int, window: int) -> Page:
        calls.append(after)
        return Page([after + 1], after + 1, False)

    reader = PageReader(endless, 0, 1, lambda w, n: w)
    reader.take(0, 1)
    thread = reader._thread
    reader.close()
    assert thread is not None and not thread.is_alive()
    read = len(calls)
    assert read <= 5  # it read a few pages ahead, not the endless log
