"""The LISTEN connection that keeps the indexes current.

One dedicated asyncpg connection LISTENs on ``facegrid_changes``; notifications are queued in
arrival order (commit order), the parts of a split change joined (``PartAssembler``), and handed
to the IndexRegistry in arrival order: whatever queued up while the previous changes were being
applied goes together, so that consecutive changes of a collection apply as one. When the
connection drops (server restart, terminated backend, network) it is reopened with exponential
backoff and jitter (tenacity), which starts again from the shortest delay only after a connection
that stayed up for ``stable_s``; notifications sent meanwhile are lost, so every loaded collection
is rebuilt after each (re)connect. A keepalive query notices a connection that died silently.
Service notifications (and reconnects) also call ``on_service_change``: api_svc drops its cached
API key lookups.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

import asyncpg
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from api_svc.index_registry import IndexRegistry
from api_svc.notifications import CHANNEL, Notification, PartAssembler, parse
from facegrid.backoff import jittered_backoff

log = structlog.get_logger()

_RESYNC: Final = "resync"
#: Operations that change services (their keys, types, calculators).
SERVICE_OPS: Final = frozenset(
    {"collection_create", "collection_update", "collection_delete", "truncate"}
)


#: How a LISTEN connection is expected to fail (anything else is logged with its traceback).
_LISTENER_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "index_listener_retry",
        error=type(error).__name__,
        attempt=state.attempt_number,
        retry_s=round(state.upcoming_sleep, 3),
        exc_info=error if not isinstance(error, _LISTENER_ERRORS) else None,
    )


class IndexSync:
    """Feeds the registry from PostgreSQL notifications until ``stop``."""

    def __init__(
        self,
        url: str,
        registry: IndexRegistry,
        *,
        on_service_change: Callable[[], None] = lambda: None,
        keepalive_s: float = 5.0,
        backoff_s: tuple[float, float] = (0.1, 5.0),
        stable_s: float = 30.0,
        on_applied: Callable[[float], None] = lambda _seconds: None,
    ) -> None:
        self._url = url
        self._registry = registry
        self._on_service_change = on_service_change
        self._keepalive_s = keepalive_s
        self._backoff_s = backoff_s
        self._stable_s = stable_s
        self._on_applied = on_applied
        """Told, for each notification, the seconds from its arrival to its application."""
        self._queue: asyncio.Queue[tuple[float, Notification | str]] = asyncio.Queue()
        self._parts = PartAssembler()
        self._conn: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.connects = 0
        """Times the LISTEN connection was opened (1 + reconnects)."""

    @property
    def listener_pid(self) -> int | None:
        """The server process id of the listening connection, while connected."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    @property
    def parts_incomplete(self) -> int:
        """Split changes given up on because a part was missing (each rebuilt its collection)."""
        return self._parts.incomplete

    async def start(self, timeout_s: float) -> None:
        """Starts listening; waits up to ``timeout_s`` for the first LISTEN (then goes on)."""
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._work())]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout_s)

    async def stop(self, persist_s: float = 0.0) -> None:
        """Stops listening and closes the connection, then the registry (which writes the
        index files of changed collections for up to ``persist_s`` seconds)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._registry.close(persist_s)

    @property
    def pending(self) -> int:
        """Notifications received and not applied yet."""
        return self._queue.qsize()

    async def wait_listening(self) -> None:
        """Returns once the LISTEN connection is open."""
        await self._listening.wait()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._queue.put_nowait((time.monotonic(), parse(payload)))
        except (ValueError, KeyError, TypeError):
            log.warning("index_notification_malformed", payload=payload[:200])

    async def _work(self) -> None:
        while True:
            items = [await self._queue.get()]
            while not self._queue.empty():  # what queued up meanwhile goes together
                items.append(self._queue.get_nowait())
            try:
                await self._handle([item for _, item in items])
                done = time.monotonic()
                for arrived, item in items:
                    if isinstance(item, Notification):
                        self._on_applied(done - arrived)
            except Exception:
                log.exception("index_notification_failed")

    async def _handle(self, items: list[Notification | str]) -> None:
        """Hands the whole changes among ``items`` to the registry, in order, together."""
        whole: list[Notification] = []
        for item in items:
            if isinstance(item, Notification):
                for note in self._parts.feed(item):
                    if note.op in SERVICE_OPS:
                        self._on_service_change()
                    whole.append(note)
            else:
                if whole:
                    await self._registry.handle_all(whole)
                whole = []
                self._parts.clear()  # parts of a change cut by the reconnect: rebuilt below
                self._on_service_change()
                self._registry.rebuild_all(item)
        if whole:
            await self._registry.handle_all(whole)

    async def _listen(self) -> None:
        """Keeps a LISTEN connection open. Failed connects and connections that drop soon after
        opening are retried with growing, jittered delays; only a connection that stayed up for
        ``stable_s`` starts the next round from the shortest delay."""
        while True:
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(Exception),
                wait=jittered_backoff(*self._backoff_s),
                before_sleep=_log_retry,
            )
            async for attempt in retrying:
                with attempt:
                    await self._connect_and_serve()

    async def _connect_and_serve(self) -> None:
        """Connects and serves until the connection is lost. Returns when it had stayed up for
        ``stable_s``; raises when connecting failed or it dropped sooner (to be retried)."""
        conn = await asyncpg.connect(self._url, timeout=10)
        opened = time.monotonic()
        try:
            await self._serve(conn)
        except _LISTENER_ERRORS as exc:
            if time.monotonic() - opened < self._stable_s:
                raise
            log.warning("index_listener_lost", error=type(exc).__name__)
        finally:
            self._listening.clear()
            self._conn = None
            conn.terminate()

    async def _serve(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        await conn.add_listener(CHANNEL, self._on_notify)
        self._conn = conn
        self.connects += 1
        # Notifications sent while not listening are lost: every loaded collection is rebuilt.
        self._queue.put_nowait((time.monotonic(), _RESYNC if self.connects == 1 else "reconnect"))
        log.info("index_listener_connected", connects=self.connects)
        self._listening.set()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self._keepalive_s)
            if not lost.is_set():
                await conn.execute("SELECT 1", timeout=self._keepalive_s)
        raise ConnectionResetError("listening connection closed")
