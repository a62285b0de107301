"""Progress lines of ``make models``: plain ``models: ...`` lines on stdout, flushed at once (the
build runs in CI logs and under ``make run``, so no carriage-return bars). A step says what it is
doing when it starts and how long it took when it ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PREFIX = "models: "


def say(message: str) -> None:
    """Prints one progress line at once."""
    print(f"{PREFIX}{message}", flush=True)


def megabytes(path: Path) -> str:
    """A file's size, e.g. ``95.3 MB`` (10^6 bytes)."""
    return f"{path.stat().st_size / 1e6:.1f} MB"


@dataclass(slots=True)
class Step:
    """A running step; ``detail`` (a size, a count) is added to its closing line."""

    done: str
    """The closing line's text, e.g. ``fetched npm x@1.0``."""
    detail: str = ""


@contextmanager
def step(doing: str, done: str, clock: Callable[[], float] = time.monotonic) -> Iterator[Step]:
    """Prints ``<doing> ...`` now and ``<done>[: <detail>] (<seconds> s)`` when the block ends
    (``<doing>: failed after <seconds> s`` when it raises)."""
    say(f"{doing} ...")
    begun = clock()
    current = Step(done)
    try:
        yield current
    except BaseException:
        say(f"{doing}: failed after {clock() - begun:.1f} s")
        raise
    detail = f": {current.detail}" if current.detail else ""
    say(f"{current.done}{detail} ({clock() - begun:.1f} s)")
