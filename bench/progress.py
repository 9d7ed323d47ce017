"""Progress bars on a terminal, silence elsewhere (CI logs, pipes)."""

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int, desc: str) -> Iterator[T]:
    """Yield `items`, drawing a tqdm bar on stderr only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, file=sys.stderr, leave=False, unit="op")


def say(message: str) -> None:
    """Print a status line on stderr (stdout is kept for the results table)."""
    print(message, file=sys.stderr, flush=True)


@contextmanager
def counter(*, total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """Yield a function that advances a bar by n (a no-op when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, file=sys.stderr, leave=False, unit="ev") as bar:
        yield bar.update
