"""What the sync and asyncio clients share: per-call settings (credentials, deadline) and the
channel configuration built from the constructor's arguments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from facegrid_client import admin_calls, recognition_calls  # noqa: F401  (define the Calls)
from facegrid_client._calls import idempotent_methods
from facegrid_client.channel import (
    Retry,
    Target,
    Tls,
    channel_options,
    parse_target,
    service_config,
)

#: Default per-call deadline, seconds.
DEFAULT_TIMEOUT_S = 30.0


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


#: ``with_options`` argument default: keep the current value.
KEEP: Any = _Keep()


@dataclass(frozen=True)
class CallSettings:
    """Credentials and deadline sent with every call."""

    api_key: str | None = None
    """Sent as ``x-api-key``: a service's key (recognition, detection, verification calls)."""
    token: str | None = None
    """Sent as ``authorization: Bearer``: an access token (administration calls)."""
    timeout: float | None = DEFAULT_TIMEOUT_S
    """Deadline of each unary call, seconds; None: none."""

    def metadata(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        if self.api_key:
            pairs.append(("x-api-key", self.api_key))
        if self.token:
            pairs.append(("authorization", f"Bearer {self.token}"))
        return tuple(pairs)

    def changed(self, api_key: Any, token: Any, timeout: Any) -> CallSettings:
        changes = {
            name: value
            for name, value in (("api_key", api_key), ("token", token), ("timeout", timeout))
            if value is not KEEP
        }
        return replace(self, **changes)


@dataclass(frozen=True)
class ChannelPlan:
    """Where the channels go and how they are configured."""

    target: Target
    """Envoy (both services), or api_svc when ``admin`` is set."""
    admin: Target | None
    """admin_svc, when reached apart from the recognition service (inside a cluster)."""
    tls: Tls
    options: list[tuple[str, Any]]


def plan(
    target: str,
    *,
    admin_target: str | None,
    tls: bool | None,
    root_certificates: bytes | None,
    private_key: bytes | None,
    certificate_chain: bytes | None,
    retry: Retry | None,
    load_balancing: str | None,
    options: Sequence[tuple[str, Any]],
) -> ChannelPlan:
    if tls is None and (root_certificates or private_key or certificate_chain):
        tls = True
    config = service_config(retry, idempotent_methods(), load_balancing)
    return ChannelPlan(
        parse_target(target, tls),
        parse_target(admin_target, tls) if admin_target else None,
        Tls(root_certificates, private_key, certificate_chain),
        channel_options(config, options),
    )
