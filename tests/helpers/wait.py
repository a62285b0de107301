"""Bounded polling, for the few waits that have no event to await: a process's readiness seen
from outside (an HTTP probe, a log line), or state another process changes asynchronously (the
mesh's index, its statistics). Where an event exists (an asyncio.Event, a queue, a gRPC health
Watch, ``RequestStats.drain()``), await it instead.

Every wait names what it waits for and fails the test with that name after ``timeout_s``; a
predicate may raise to stop at once (the process it waits on has exited).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: Pause between two looks, in seconds: short, the condition is cheap to check.
INTERVAL_S = 0.05


def _timed_out(what: str, timeout_s: float) -> AssertionError:
    return AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def wait_until(
    predicate: Callable[[], bool], timeout_s: float, what: str, *, interval_s: float = INTERVAL_S
) -> None:
    """Returns once ``predicate()`` is true; fails naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout_s)
        time.sleep(interval_s)


def wait_for_value(
    probe: Callable[[], T | None], timeout_s: float, what: str, *, interval_s: float = INTERVAL_S
) -> T:
    """Returns the first value of ``probe()`` that is not None; fails naming ``what`` after
    ``timeout_s``."""
    found: list[T] = []

    def done() -> bool:
        value = probe()
        if value is None:
            return False
        found.append(value)
        return True

    wait_until(done, timeout_s, what, interval_s=interval_s)
    return found[0]


def wait_for_process(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    timeout_s: float,
    what: str,
    log: Path | None = None,
) -> None:
    """Waits until ``ready()`` (a probe of the started ``process``: an HTTP or health check);
    fails at once when the process exits, with the end of its ``log``."""

    def probe() -> bool:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log is not None else ""
            raise AssertionError(f"{what} exited with {process.returncode}\n{tail}")
        return ready()

    wait_until(probe, timeout_s, f"{what} to be ready" + (f" (log {log})" if log else ""))


async def wait_until_async(
    predicate: Callable[[], Awaitable[bool]],
    timeout_s: float,
    what: str,
    *,
    interval_s: float = INTERVAL_S,
) -> None:
    """``wait_until`` for an async predicate, without blocking the event loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        if loop.time() > deadline:
            raise _timed_out(what, timeout_s)
        await asyncio.sleep(interval_s)
