"""Which models the backend can run right now, refreshed in the background.

The service is SERVING while the backend answers and the detector and default calculator are
ready; optional models (other calculators, age/gender) are offered when they are ready. When
Triton goes away the watcher flips health to NOT_SERVING, and back when it returns; requests in
between fail with UNAVAILABLE, and nothing needs restarting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog

from embed_svc.backends.base import BackendError, InferenceBackend

log = structlog.get_logger()


class ModelWatch:
    """The backend's ready models, as last seen."""

    def __init__(self, backend: InferenceBackend, required: Sequence[str]) -> None:
        self._backend = backend
        self._required = tuple(required)
        self.available: frozenset[str] = frozenset()
        """Models ready at the last refresh."""
        self.serving = False
        """True when the last refresh found every required model ready."""

    async def refresh(self) -> bool:
        """Asks the backend; returns whether the service can serve."""
        try:
            self.available = await self._backend.ready_models()
        except BackendError:
            self.available = frozenset()
        self.serving = all(model in self.available for model in self._required)
        return self.serving

    async def run(self, interval_s: float, on_change: Callable[[bool], Awaitable[None]]) -> None:
        """Refreshes every ``interval_s`` until cancelled, calling ``on_change`` on flips."""
        last: bool | None = None
        while True:
            serving = await self.refresh()
            if serving != last:
                log.info(
                    "backend_readiness",
                    serving=serving,
                    models=sorted(self.available),
                    required=list(self._required),
                )
                await on_change(serving)
                last = serving
            await asyncio.sleep(interval_s)
