"""Console server configuration, read once at start from a mapping (the environment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from facegrid.config import get_float, get_int, get_log_format, get_str
from facegrid.logs import LogFormat

#: The built single-page app (``make console``).
DEFAULT_ROOT = Path(__file__).resolve().parent / "web" / "dist"


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """Settings of the console's static file server."""

    host: str
    """Interface to bind (FACEGRID_CONSOLE_HOST, default 127.0.0.1)."""
    port: int
    """HTTP port (FACEGRID_CONSOLE_PORT, default 8300)."""
    root: Path
    """Folder of the built console: index.html, assets/, openapi.json (FACEGRID_CONSOLE_ROOT,
    default console/web/dist, written by ``make console``)."""
    shutdown_grace_s: float
    """Seconds requests in flight may take to finish on SIGTERM (FACEGRID_SHUTDOWN_GRACE_S, 5)."""
    log_format: LogFormat
    """``console`` (key=value, default) or ``json`` (FACEGRID_LOG_FORMAT)."""


def load_config(env: Mapping[str, str]) -> ConsoleConfig:
    """Builds the configuration from ``env``; raises ConfigError on a bad value."""
    return ConsoleConfig(
        host=get_str(env, "FACEGRID_CONSOLE_HOST", "127.0.0.1"),
        port=get_int(env, "FACEGRID_CONSOLE_PORT", 8300, minimum=0),
        root=Path(get_str(env, "FACEGRID_CONSOLE_ROOT", str(DEFAULT_ROOT))),
        shutdown_grace_s=get_float(env, "FACEGRID_SHUTDOWN_GRACE_S", 5.0),
        log_format=get_log_format(env),
    )
