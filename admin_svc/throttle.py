"""Sign-in throttling per account and per client address, kept in PostgreSQL so that every
admin_svc node counts the same attempts.

Each credential attempt (sign-in, sign-up) is counted before any password is checked, in one
statement that adds 1 to the e-mail's counter (scope ``account``, the SHA-256 of the lower-cased
address: the same for an unknown e-mail as for a known one) and to the client address's
(scope ``address``). A counter whose window has ended starts again from 1. Past the limit of
either, the attempt is refused with RESOURCE_EXHAUSTED (HTTP 429) naming when to try again,
before any work: the answer and the work are the same whether or not the account exists. A
successful sign-in clears the account's counter and gives its attempt back to the address.
Counting before checking means concurrent attempts cannot slip past the limit together.

The client address is the one Envoy sets (``x-facegrid-client-address``, from its peer and the
configured number of trusted proxies); a direct gRPC caller's own peer address otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc

from facegrid.errors import ServiceError

#: Metadata key of the client address Envoy sets on every request (gateway/envoy.yaml.in).
CLIENT_ADDRESS_KEY = "x-facegrid-client-address"

_COUNT = """
INSERT INTO sign_in_attempts AS a (scope, key, attempts, window_start)
SELECT scope, key, 1, now() FROM unnest($1::text[], $2::bytea[]) AS u(scope, key)
ON CONFLICT (scope, key) DO UPDATE SET
    attempts = CASE WHEN a.window_start <= now() - make_interval(secs => $3) THEN 1
                    ELSE a.attempts + 1 END,
    window_start = CASE WHEN a.window_start <= now() - make_interval(secs => $3) THEN now()
                        ELSE a.window_start END
RETURNING scope, attempts,
          greatest(0, extract(epoch FROM a.window_start + make_interval(secs => $3) - now()))
              AS retry_after_s
"""
_CLEAR_ACCOUNT = "DELETE FROM sign_in_attempts WHERE scope = 'account' AND key = $1"
_GIVE_BACK = (
    "UPDATE sign_in_attempts SET attempts = greatest(0, attempts - 1)"
    " WHERE scope = 'address' AND key = $1"
)
_PRUNE = "DELETE FROM sign_in_attempts WHERE window_start <= now() - make_interval(secs => $1)"


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How many credential attempts are allowed within a window."""

    account_attempts: int = 10
    """Per e-mail address (FACEGRID_SIGNIN_ACCOUNT_ATTEMPTS)."""
    address_attempts: int = 100
    """Per client address, sign-ups included (FACEGRID_SIGNIN_ADDRESS_ATTEMPTS)."""
    window_s: float = 900.0
    """The window, seconds (FACEGRID_SIGNIN_WINDOW_S)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """Whose credential attempt it is."""

    account: bytes | None
    """Digest of the lower-cased e-mail (None: not counted per account, e.g. a sign-up)."""
    address: bytes | None
    """Digest of the client address (None when unknown)."""


def digest(text: str) -> bytes:
    """The SHA-256 a counter is kept under."""
    return hashlib.sha256(text.encode()).digest()


def throttled(retry_after_s: int) -> ServiceError:
    """Too many attempts (429); the caller may try again after ``retry_after_s``."""
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "SIGN_IN_THROTTLED",
        f"too many sign-in attempts for this account or from this address; try again in"
        f" {retry_after_s} s",
        metadata={"retry_after_s": str(retry_after_s)},
    )


def client_address(metadata: Iterable[Any] | None, peer: str) -> str | None:
    """The caller's address: Envoy's ``x-facegrid-client-address``, else the gRPC peer
    (``ipv4:1.2.3.4:5678`` -> ``1.2.3.4``)."""
    for key, value in metadata or ():
        if key == CLIENT_ADDRESS_KEY:
            text = value.decode() if isinstance(value, bytes) else str(value)
            if text.strip():
                return text.strip()
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6") and rest:
        host = rest.rsplit(":", 1)[0]
        return host.strip("[]")
    return None


class SignInThrottle:
    """Counts credential attempts in ``sign_in_attempts``."""

    def __init__(self, policy: ThrottlePolicy) -> None:
        self.policy = policy

    async def admit(self, conn: asyncpg.Connection, attempt: Attempt) -> None:
        """Counts the attempt; raises ``throttled`` when the account or the address is past
        its limit."""
        scopes = [
            (scope, key)
            for scope, key in (("account", attempt.account), ("address", attempt.address))
            if key is not None
        ]
        if not scopes:
            return
        rows = await conn.fetch(
            _COUNT, [s for s, _ in scopes], [k for _, k in scopes], self.policy.window_s
        )
        limits = {"account": self.policy.account_attempts, "address": self.policy.address_attempts}
        over = [row for row in rows if row["attempts"] > limits[row["scope"]]]
        if over:
            raise throttled(max(int(row["retry_after_s"]) + 1 for row in over))

    async def succeeded(self, conn: asyncpg.Connection, attempt: Attempt) -> None:
        """A sign-in succeeded: the account starts afresh, the address gets its attempt back."""
        if attempt.account is not None:
            await conn.execute(_CLEAR_ACCOUNT, attempt.account)
        if attempt.address is not None:
            await conn.execute(_GIVE_BACK, attempt.address)

    async def prune(self, conn: asyncpg.Connection) -> int:
        """Deletes counters whose window has ended; returns how many."""
        status = await conn.execute(_PRUNE, self.policy.window_s)
        return int(status.split()[-1])
