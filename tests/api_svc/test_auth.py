"""API key authentication: CompreFace's answers for missing, malformed, unknown and wrong-type
keys, and the short-lived lookup cache."""

from __future__ import annotations

import uuid

import grpc
import pytest

from api_svc.auth import Authenticator, ServiceType, parse_key
from facegrid.errors import ServiceError
from facegrid.schema import api_key_digest
from tests.api_svc.fakes import FakeKeyStore


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def meta(key: str) -> tuple[tuple[str, str], ...]:
    return (("x-request-id", "r1"), ("x-api-key", key))


async def refused(auth: Authenticator, metadata, wanted=ServiceType.DETECTION) -> ServiceError:
    with pytest.raises(ServiceError) as raised:
        await auth.authenticate(metadata, wanted)
    return raised.value


async def test_a_key_of_the_right_type_opens_its_service() -> None:
    store = FakeKeyStore()
    key = store.add(ServiceType.DETECTION, calculator="mobileface")
    service = await Authenticator(store, 5).authenticate(meta(str(key)), ServiceType.DETECTION)
    assert service == store.records[api_key_digest(key)].service
    assert service.calculator == "mobileface"


@pytest.mark.parametrize("metadata", [(), None, (("x-api-key", "  "),)])
async def test_a_missing_key_is_code_20(metadata) -> None:
    error = await refused(Authenticator(FakeKeyStore(), 5), metadata)
    assert (error.compreface_code, error.http_status) == (20, 400)
    assert error.message == "Missing header: x-api-key"
    assert error.code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("text", ["nope", "12345678-1234-1234-1234-12345678901", "z" * 36])
async def test_a_key_that_is_no_uuid_is_code_26(text: str) -> None:
    store = FakeKeyStore()
    error = await refused(Authenticator(store, 5), meta(text))
    assert (error.compreface_code, error.http_status) == (26, 400)
    assert error.message == "Service API key should be UUID"
    assert store.lookups == 0


async def test_an_unknown_key_is_code_10_not_found() -> None:
    key = uuid.uuid4()
    error = await refused(Authenticator(FakeKeyStore(), 5), meta(str(key)))
    assert (error.compreface_code, error.http_status) == (10, 404)
    assert error.message == f"DETECTION service with API Key {key} not found"


async def test_a_key_of_another_type_is_refused_naming_both_types() -> None:
    store = FakeKeyStore()
    key = store.add(ServiceType.RECOGNITION)
    error = await refused(Authenticator(store, 5), meta(str(key)), ServiceType.VERIFICATION)
    assert (error.compreface_code, error.http_status) == (10, 404)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert "belongs to a RECOGNITION service" in error.message
    assert "/api/v1/verification needs a VERIFICATION service key" in error.message


async def test_a_digest_match_with_another_stored_key_is_refused() -> None:
    store = FakeKeyStore()
    key = store.add(ServiceType.DETECTION)
    other = uuid.uuid4()
    store.records[api_key_digest(other)] = store.records[api_key_digest(key)]
    error = await refused(Authenticator(store, 5), meta(str(other)))
    assert error.compreface_code == 10


async def test_lookups_are_cached_for_the_ttl_then_a_rotated_key_stops_working() -> None:
    store = FakeKeyStore()
    key = store.add(ServiceType.DETECTION)
    clock = Clock()
    auth = Authenticator(store, 5, clock)
    for _ in range(3):
        await auth.authenticate(meta(str(key)), ServiceType.DETECTION)
    assert store.lookups == 1
    store.records.clear()  # the key was rotated
    clock.now += 4.9
    await auth.authenticate(meta(str(key)), ServiceType.DETECTION)
    clock.now += 0.2
    error = await refused(auth, meta(str(key)))
    assert error.compreface_code == 10
    assert store.lookups == 2


async def test_a_zero_ttl_looks_up_every_time() -> None:
    store = FakeKeyStore()
    key = store.add(ServiceType.DETECTION)
    auth = Authenticator(store, 0)
    for _ in range(3):
        await auth.authenticate(meta(str(key)), ServiceType.DETECTION)
    assert store.lookups == 3


def test_parse_key_accepts_upper_case_and_surrounding_blanks() -> None:
    key = uuid.uuid4()
    assert parse_key(f" {str(key).upper()} ") == key
    assert parse_key(key.hex) is None


async def test_a_full_cache_makes_room_for_one_key_without_dropping_the_rest() -> None:
    store = FakeKeyStore()
    keys = [store.add(ServiceType.DETECTION) for _ in range(4)]
    auth = Authenticator(store, 60, Clock(), max_entries=3)
    for key in keys:  # the fourth pushes out the least recently used: the first
        await auth.authenticate(meta(str(key)), ServiceType.DETECTION)
    assert store.lookups == 4
    for key in keys[1:]:
        await auth.authenticate(meta(str(key)), ServiceType.DETECTION)
    assert store.lookups == 4, "the other keys stayed cached"
    await auth.authenticate(meta(str(keys[0])), ServiceType.DETECTION)
    assert store.lookups == 5


class FlakyKeyStore(FakeKeyStore):
    """A key store whose database can go down (every lookup then answers 503)."""

    down: bool = False

    async def find(self, digest: bytes):
        if self.down:
            self.lookups += 1
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE", "down")
        return await super().find(digest)


async def test_during_an_outage_a_key_seen_recently_still_opens_its_service() -> None:
    store, clock = FlakyKeyStore(), Clock()
    key = store.add(ServiceType.RECOGNITION)
    auth = Authenticator(store, cache_s=5, clock=clock, stale_s=60)
    service = await auth.authenticate(meta(str(key)), ServiceType.RECOGNITION)
    store.down = True
    clock.now += 30  # the short cache has expired; the database is asked and does not answer
    assert await auth.authenticate(meta(str(key)), ServiceType.RECOGNITION) == service
    assert auth.stale_answers == 1 and store.lookups == 2
    wrong_type = await refused(auth, meta(str(key)), ServiceType.DETECTION)
    assert wrong_type.reason == "WRONG_SERVICE_TYPE"  # the remembered service keeps its type
    clock.now += 31  # not seen within stale_s: the database's answer stands
    assert (await refused(auth, meta(str(key)))).code == grpc.StatusCode.UNAVAILABLE


async def test_during_an_outage_unknown_and_forgotten_keys_get_the_503() -> None:
    store, clock = FlakyKeyStore(), Clock()
    key = store.add(ServiceType.RECOGNITION)
    auth = Authenticator(store, cache_s=5, clock=clock, stale_s=60)
    await auth.authenticate(meta(str(key)), ServiceType.RECOGNITION)
    store.down = True
    unknown = await refused(auth, meta(str(uuid.uuid4())), ServiceType.RECOGNITION)
    assert unknown.code == grpc.StatusCode.UNAVAILABLE
    auth.forget_all()  # a service changed (e.g. its key was rotated): nothing is served stale
    forgotten = await refused(auth, meta(str(key)), ServiceType.RECOGNITION)
    assert forgotten.code == grpc.StatusCode.UNAVAILABLE
    assert auth.stale_answers == 0


async def test_stale_answers_are_off_by_default() -> None:
    store = FlakyKeyStore()
    key = store.add(ServiceType.RECOGNITION)
    auth = Authenticator(store, cache_s=0)
    await auth.authenticate(meta(str(key)), ServiceType.RECOGNITION)
    store.down = True
    assert (await refused(auth, meta(str(key)))).code == grpc.StatusCode.UNAVAILABLE
