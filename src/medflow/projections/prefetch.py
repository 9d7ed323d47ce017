"""Read a rebuild's next pages of the log in a thread while the current page is written.

A rebuild alternates between the client (decoding a page: parsing, opening sealed fields,
upcasting, validating) and the server (writing the page's rows). Read and decoded on a
connection of its own meanwhile, the next page is ready when the writes end: the driver lets go
of the GIL while it waits for the server, and the thread decodes then.
"""

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from django.db import connection

from medflow.projections.pages import Page

# Pages read ahead of the one being written: one is enough to keep both sides busy; two absorb
# a page that is slow to write.
DEPTH = 2

Read = Callable[[int, int], Page]
NextWindow = Callable[[int, int], int]


class PageReader:
    """Pages of the log read in order by a thread, from `after` on, with the windows that
    `next_window` gives after each page (as the caller works them out)."""

    def __init__(self, read: Read, after: int, window: int, next_window: NextWindow) -> None:
        self._read = read
        self._next_window = next_window
        self._pages: queue.Queue = queue.Queue(maxsize=DEPTH)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, args=(after, window), name="medflow-page-reader", daemon=True)
        self._thread.start()

    def _run(self, after: int, window: int) -> None:
        try:
            while not self._stop.is_set():
                page = self._read(after, window)
                self._put((after, window, page))
                if page.last:
                    return
                window = self._next_window(window, len(page.events))
                after = page.read_to
        except BaseException as exc:  # handed to the caller, who raises it
            self._put((after, window, exc))
        finally:
            connection.close()  # the thread's own connection

    def _put(self, item: tuple) -> None:
        while not self._stop.is_set():
            try:
                self._pages.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def take(self, after: int, window: int) -> Page:
        """Return the page of the log from `after` read with `window`: the one read ahead, or,
        if the run went otherwise than the thread foresaw (another rebuild moved the
        checkpoints), one read here, as every later page then is."""
        if self._thread is not None:
            got_after, got_window, page = self._pages.get()
            if isinstance(page, BaseException):
                self.close()
                raise page
            if (got_after, got_window) == (after, window):
                return page
            self.close()
        return self._read(after, window)

    def close(self) -> None:
        """Stop the thread and wait for it."""
        if self._thread is None:
            return
        self._stop.set()
        while self._thread.is_alive():
            with suppress(queue.Empty):
                self._pages.get(timeout=0.05)  # a put waiting for room
        self._thread.join()
        self._thread = None

    @property
    def reading_ahead(self) -> bool:
        """Tell whether pages still come from the thread."""
        return self._thread is not None


@contextmanager
def pages_ahead(read: Read, after: int, window: int, next_window: NextWindow) -> Iterator[PageReader]:
    """Yield a PageReader for the duration."""
    # (A shorter GIL switch interval than Python's 5 ms, for the writer to get the GIL back
    # sooner after each wait, made no difference to a 1M-event rebuild: 40.1 s at 0.5 ms,
    # 39.9 s at 5 ms.)
    reader = PageReader(read, after, window, next_window)
    try:
        yield reader
    finally:
        reader.close()
