"""API key authentication: the ``x-api-key`` metadata -> the service (face collection) it opens.

The key is a UUID; the database finds its service by ``sha256(key bytes)`` (a unique index on
``services.api_key_sha256``) and the match is confirmed in constant time. Answers, as
CompreFace's SecurityValidationFilter gives them:

| case | gRPC code | CompreFace code / HTTP |
|---|---|---|
| no ``x-api-key`` | UNAUTHENTICATED | 20 / 400 ``Missing header: x-api-key`` |
| not a UUID | UNAUTHENTICATED | 26 / 400 ``Service API key should be UUID`` |
| no service has it | UNAUTHENTICATED | 10 / 404 ``<TYPE> service with API Key <key> not found`` |
| a service of another type | PERMISSION_DENIED | 10 / 404, the message naming both types |

Lookups, found or not, are kept for ``cache_s`` seconds (a cachetools TTLCache of at most
10,000 keys, least recently used out first), so a rotated or deleted key stops working within
that time at the latest; ``forget_all`` (called on the schema's service notifications) drops
them at once.

Degrade, do not fail: every service found is also remembered for ``stale_s`` seconds (an LRU
cache of as many keys). While the database cannot be reached, a key seen within that time still
opens its service, so recognition, detection and verification keep answering from memory; an
unknown key, or one not seen recently, gets the database's 503. ``forget_all`` drops these too
(a notification said a service changed: none is served stale until it is looked up again).
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, cast

import grpc
from cachetools import LRUCache, TTLCache

from facegrid.errors import ServiceError
from facegrid.schema import api_key_digest

API_KEY_HEADER = "x-api-key"
#: CompreFace's code for an unknown service ("model not found").
MODEL_NOT_FOUND = 10
#: CompreFace's code for a missing header.
MISSING_HEADER = 20
#: Lookups cached at most; past that the least recently used one makes room.
CACHE_MAX_ENTRIES = 10_000
#: A cached lookup that found no service (told apart from "not cached").
_NOT_CACHED = object()


class ServiceType(Enum):
    """Service types as ``services.type`` stores them."""

    RECOGNITION = "RECOGNITION"
    DETECTION = "DETECTION"
    VERIFICATION = "VERIFICATION"


#: The REST path prefix each type may call (for messages).
_PREFIX = {
    ServiceType.RECOGNITION: "/api/v1/recognition",
    ServiceType.DETECTION: "/api/v1/detection",
    ServiceType.VERIFICATION: "/api/v1/verification",
}


@dataclass(frozen=True, slots=True)
class Service:
    """The service an API key opens."""

    id: uuid.UUID
    """``services.id``."""
    type: ServiceType
    """Its type, which decides the paths it may call."""
    calculator: str | None
    """Its calculator (embedding model); None means embed_svc's default."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A ``services`` row found by a key digest."""

    service: Service
    api_key: uuid.UUID
    """The stored key, to confirm the match in constant time."""


class KeyStore(Protocol):
    """Where services are looked up by key digest."""

    async def find(self, digest: bytes) -> KeyRecord | None:
        """The service whose ``api_key_sha256`` is ``digest``, if any."""
        ...


def _missing_header() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNAUTHENTICATED,
        "MISSING_API_KEY",
        f"Missing header: {API_KEY_HEADER}",
        MISSING_HEADER,
        http_status=400,
    )


def _malformed_key() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNAUTHENTICATED,
        "MALFORMED_API_KEY",
        "Service API key should be UUID",
        26,
        http_status=400,
    )


def _unknown_key(key: str, wanted: ServiceType) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNAUTHENTICATED,
        "UNKNOWN_API_KEY",
        f"{wanted.value} service with API Key {key} not found",
        MODEL_NOT_FOUND,
        http_status=404,
    )


def _wrong_type(key: str, found: ServiceType, wanted: ServiceType) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.PERMISSION_DENIED,
        "WRONG_SERVICE_TYPE",
        f"{wanted.value} service with API Key {key} not found: the key belongs to a"
        f" {found.value} service, and {_PREFIX[wanted]} needs a {wanted.value} service key",
        MODEL_NOT_FOUND,
        {"service_type": found.value, "required_type": wanted.value},
        http_status=404,
    )


def parse_key(text: str) -> uuid.UUID | None:
    """The key as a UUID; None unless ``text`` is a UUID in its 36-character form."""
    text = text.strip()
    if len(text) != 36:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class Authenticator:
    """Turns call metadata into the calling service, with a short-lived cache."""

    def __init__(
        self,
        store: KeyStore,
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = CACHE_MAX_ENTRIES,
        stale_s: float = 0.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._cache: TTLCache[bytes, KeyRecord | None] | None = (
            TTLCache(maxsize=max_entries, ttl=cache_s, timer=clock) if cache_s > 0 else None
        )
        self._stale_s = stale_s
        self._seen: LRUCache[bytes, tuple[KeyRecord, float]] = LRUCache(maxsize=max_entries)
        self._generation = 0
        self.stale_answers = 0
        """Lookups answered from memory while the database was unreachable."""

    def forget_all(self) -> None:
        """Drops every cached lookup (a service was created, changed or deleted); lookups in
        flight meanwhile are not cached."""
        if self._cache is not None:
            self._cache.clear()
        self._seen.clear()
        self._generation += 1

    async def authenticate(
        self, metadata: Iterable[tuple[str, str | bytes]] | None, wanted: ServiceType
    ) -> Service:
        """The service of the call's API key, which must be of type ``wanted``.

        Raises ServiceError (missing, malformed, unknown key, or a key of another type).
        """
        header = _header(metadata)
        if header is None or not header.strip():
            raise _missing_header()
        key = parse_key(header)
        if key is None:
            raise _malformed_key()
        record = await self._lookup(api_key_digest(key))
        if record is None or not hmac.compare_digest(record.api_key.bytes, key.bytes):
            raise _unknown_key(str(key), wanted)
        if record.service.type is not wanted:
            raise _wrong_type(str(key), record.service.type, wanted)
        return record.service

    async def _lookup(self, digest: bytes) -> KeyRecord | None:
        cached = _NOT_CACHED if self._cache is None else self._cache.get(digest, _NOT_CACHED)
        if cached is not _NOT_CACHED:
            return cast(KeyRecord | None, cached)
        generation = self._generation
        try:
            record = await self._store.find(digest)
        except ServiceError as error:
            if error.code is not grpc.StatusCode.UNAVAILABLE:
                raise
            return self._stale(digest, error)
        if generation == self._generation:
            if self._cache is not None:
                self._cache[digest] = record
            if record is not None and self._stale_s > 0:
                self._seen[digest] = (record, self._clock())
        return record

    def _stale(self, digest: bytes, error: ServiceError) -> KeyRecord:
        """The service last found for ``digest`` when it was found within ``stale_s``; else
        ``error`` (the database is unreachable and this key was not seen recently)."""
        seen = self._seen.get(digest)
        if seen is None or self._clock() - seen[1] > self._stale_s:
            raise error
        self.stale_answers += 1
        return seen[0]


def _header(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == API_KEY_HEADER:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None
