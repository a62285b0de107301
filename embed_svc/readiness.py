"""Which models the backend can run right now, refreshed in the background.

The node is ready for work (health ``facegrid.ready``, refreshed by the server's periodic
readiness check) while the backend answers and the detector and default calculator are ready;
optional models (other calculators, age/gender) are offered when they are ready. When Triton goes
away readiness turns NOT_SERVING (the process stays alive: ``""`` SERVING), and back when it
returns; requests in between fail with UNAVAILABLE, and nothing needs restarting.
"""

from __future__ import annotations

from collections.abc import Sequence

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
        self._seen = False

    async def refresh(self) -> bool:
        """Asks the backend; returns whether the service can serve (logs each change)."""
        try:
            self.available = await self._backend.ready_models()
        except BackendError:
            self.available = frozenset()
        serving = all(model in self.available for model in self._required)
        if serving != self.serving or not self._seen:
            log.info(
                "backend_readiness",
                serving=serving,
                models=sorted(self.available),
                required=list(self._required),
            )
        self.serving, self._seen = serving, True
        return serving
