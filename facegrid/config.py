"""Typed readers for configuration mappings (usually ``os.environ``, passed in by ``__main__``).

Every service's ``config.py`` builds a frozen dataclass with these; nothing else reads the
environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

#: A service's Prometheus metrics listen on its gRPC port plus this (DESIGN.md "Ports and names").
METRICS_PORT_OFFSET = 1000


class ConfigError(ValueError):
    """A configuration value is missing or malformed; raised at start-up."""


def get_str(env: Mapping[str, str], key: str, default: str | None = None) -> str:
    """Returns ``env[key]``, or ``default``; a missing key without default is an error."""
    value = env.get(key)
    if value is None or value == "":
        if default is None:
            raise ConfigError(f"{key} is required")
        return default
    return value


def get_int(env: Mapping[str, str], key: str, default: int, minimum: int | None = None) -> int:
    """Returns ``env[key]`` parsed as an integer (at least ``minimum``), or ``default``."""
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}")
    return value


def get_metrics_port(env: Mapping[str, str], key: str, grpc_port: int) -> int:
    """A service's Prometheus port (``key``): its gRPC port + 1000 unless set (DESIGN.md "Ports
    and names"); 0 turns metrics off, as does a gRPC port picked by the system (0)."""
    default = 0 if grpc_port == 0 else grpc_port + METRICS_PORT_OFFSET
    return get_int(env, key, default, minimum=0)


def get_float(env: Mapping[str, str], key: str, default: float) -> float:
    """Returns ``env[key]`` parsed as a float, or ``default``."""
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{key} must be a number, got {raw!r}") from exc


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def get_bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    """Returns ``env[key]`` parsed as a boolean (1/0, true/false, yes/no, on/off)."""
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{key} must be a boolean, got {raw!r}")


def get_log_format(env: Mapping[str, str]) -> Literal["json", "console"]:
    """FACEGRID_LOG_FORMAT: ``json`` (production) or ``console`` (key=value, the default)."""
    value = get_str(env, "FACEGRID_LOG_FORMAT", "console")
    if value not in ("json", "console"):
        raise ConfigError(f"FACEGRID_LOG_FORMAT must be json or console, got {value!r}")
    return "json" if value == "json" else "console"
