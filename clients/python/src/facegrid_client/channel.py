"""Channels: where to connect, TLS or plaintext, and which calls gRPC retries.

Retries are gRPC's own (a ``retryPolicy`` in the channel's service config): only calls that
change nothing (detection, recognition, verification, listing and reading) are retried, on the
status codes of :class:`Retry` (``UNAVAILABLE`` by default: the call never reached a service).
Enrolment, deletion, renaming and the other writes are never retried by the client.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

#: Largest message received (a stored face image may be several MB; gRPC's default is 4 MiB).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_DEFAULT_PORTS = {"https": 443, "grpcs": 443, "http": 80, "grpc": 80}


@dataclass(frozen=True)
class Retry:
    """How gRPC retries an idempotent call that failed with one of ``codes``."""

    attempts: int = 4
    """Attempts in all, the first included (gRPC allows at most 5)."""
    initial_backoff_s: float = 0.2
    """Upper bound of the first random delay, seconds."""
    max_backoff_s: float = 5.0
    """Upper bound of any delay, seconds."""
    backoff_multiplier: float = 2.0
    """Growth of the bound after each attempt."""
    codes: tuple[grpc.StatusCode, ...] = (grpc.StatusCode.UNAVAILABLE,)
    """Status codes worth another attempt."""

    def __post_init__(self) -> None:
        if not 2 <= self.attempts <= 5:
            raise ValueError(f"Retry.attempts is 2..5 (gRPC's limit), not {self.attempts}")
        if self.initial_backoff_s <= 0 or self.max_backoff_s <= 0:
            raise ValueError("Retry backoffs must be positive")
        if self.backoff_multiplier <= 0:
            raise ValueError("Retry.backoff_multiplier must be positive")
        if not self.codes:
            raise ValueError("Retry.codes names at least one status code")

    def policy(self) -> dict[str, Any]:
        """The gRPC ``retryPolicy`` object."""
        return {
            "maxAttempts": self.attempts,
            "initialBackoff": f"{self.initial_backoff_s:.9g}s",
            "maxBackoff": f"{self.max_backoff_s:.9g}s",
            "backoffMultiplier": self.backoff_multiplier,
            "retryableStatusCodes": [code.name for code in self.codes],
        }


def service_config(
    retry: Retry | None,
    idempotent: Iterable[tuple[str, str]],
    load_balancing: str | None = None,
) -> str:
    """The channel's service config (JSON): a retry policy for each ``(service, method)`` of
    ``idempotent``, and the load-balancing policy (``round_robin`` over every address a
    ``dns:///`` name resolves to, e.g. a Kubernetes headless Service)."""
    config: dict[str, Any] = {}
    names = [{"service": service, "method": method} for service, method in idempotent]
    if retry is not None and names:
        config["methodConfig"] = [{"name": names, "retryPolicy": retry.policy()}]
    if load_balancing:
        config["loadBalancingConfig"] = [{load_balancing: {}}]
    return json.dumps(config)


@dataclass(frozen=True)
class Target:
    """A parsed target: the gRPC address and whether it is reached over TLS."""

    address: str
    tls: bool


def parse_target(target: str, tls: bool | None = None) -> Target:
    """``host:port``, ``dns:///name:port``, ``unix:path`` (plaintext unless ``tls``), or a URL:
    ``https://host[:port]`` and ``grpcs://`` are TLS (port 443 by default), ``http://`` and
    ``grpc://`` plaintext (port 80)."""
    scheme, sep, rest = target.partition("://")
    if sep and scheme in _DEFAULT_PORTS:
        secure = scheme in ("https", "grpcs")
        if tls is not None and tls != secure:
            raise ValueError(f"{target} is {'TLS' if secure else 'plaintext'}, tls={tls}")
        host = rest.rstrip("/")
        if "/" in host:
            raise ValueError(f"a target has no path: {target}")
        if not host.rsplit(":", 1)[-1].isdigit() or host.endswith("]"):
            host = f"{host}:{_DEFAULT_PORTS[scheme]}"
        return Target(host, secure)
    if not target:
        raise ValueError("the target is empty")
    return Target(target, bool(tls))


@dataclass(frozen=True)
class Tls:
    """TLS settings: the CA certificates that sign the server's (PEM; None: the system's), and
    a client certificate and key for mutual TLS."""

    root_certificates: bytes | None = None
    private_key: bytes | None = None
    certificate_chain: bytes | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            self.root_certificates, self.private_key, self.certificate_chain
        )


def channel_options(config: str, extra: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Channel arguments: message size limits, the service config, then ``extra``."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", config),
        *extra,
    ]


def sync_channel(target: Target, tls: Tls, options: Sequence[tuple[str, Any]]) -> grpc.Channel:
    if target.tls:
        return grpc.secure_channel(target.address, tls.credentials(), options=options)
    return grpc.insecure_channel(target.address, options=options)


def aio_channel(target: Target, tls: Tls, options: Sequence[tuple[str, Any]]) -> grpc.aio.Channel:
    if target.tls:
        return grpc.aio.secure_channel(target.address, tls.credentials(), options=options)
    return grpc.aio.insecure_channel(target.address, options=options)
