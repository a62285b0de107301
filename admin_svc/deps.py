"""What the request handlers share: created once in server.py and passed in explicitly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from admin_svc.embedding_migration import EmbeddingMigrator
from admin_svc.passwords import PasswordHasher
from admin_svc.throttle import SignInThrottle
from admin_svc.tokens import TokenSigner


@dataclass(frozen=True, slots=True)
class Deps:
    """The handlers' dependencies."""

    pool: asyncpg.Pool
    """PostgreSQL connection pool."""
    signer: TokenSigner
    """Issues and verifies access tokens."""
    hasher: PasswordHasher
    """Hashes and checks passwords."""
    migrator: EmbeddingMigrator
    """Starts embedding migrations."""
    refresh_ttl_s: int
    """Lifetime of a sign-in session, seconds."""
    throttle: SignInThrottle
    """Counts credential attempts per account and client address."""
    clock: Callable[[], float] = field(default=time.time)
    """Current Unix time, seconds (replaceable in tests)."""
