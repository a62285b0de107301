"""Password hashing with Argon2id (argon2-cffi), off the event loop.

Hashes are PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``) that carry their own
parameters, so raising the cost later only needs ``needs_rehash`` on the next sign-in.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError


class PasswordHasher:
    """Hashes and checks passwords; each call runs in a worker thread (tens of ms of CPU)."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 1) -> None:
        self._argon2 = _Argon2(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        # A hash of a random password, checked when the email is unknown so that a sign-in takes
        # as long whether or not the account exists.
        self._dummy_hash = self._argon2.hash("facegrid-no-such-user")

    async def hash(self, password: str) -> str:
        """Returns the PHC-string hash of ``password`` with a fresh random salt."""
        return await asyncio.to_thread(self._argon2.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches ``password_hash``; a None hash checks a dummy hash
        (same cost) and returns False."""
        target = self._dummy_hash if password_hash is None else password_hash
        try:
            ok = await asyncio.to_thread(self._argon2.verify, target, password)
        except (VerificationError, InvalidHashError):
            return False
        return bool(ok) and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        return self._argon2.check_needs_rehash(password_hash)
