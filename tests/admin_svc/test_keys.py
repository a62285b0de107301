"""API keys (128 random bits) and refresh tokens (session and secret, digests)."""

from __future__ import annotations

import uuid

from admin_svc import keys

SESSION = uuid.uuid4()


def test_api_keys_are_128_random_bits_in_uuid_form() -> None:
    made = [keys.new_api_key() for _ in range(64)]
    assert len({k.int for k in made}) == 64
    # Every bit varies (a version-4 UUID would fix six of them).
    varying = 0
    for k in made:
        varying |= k.int ^ made[0].int
    assert varying.bit_count() > 122


def test_refresh_tokens_split_into_session_and_secret() -> None:
    secret = keys.new_refresh_secret()
    token = keys.refresh_token(SESSION, secret)
    assert keys.split_refresh_token(token) == (SESSION, secret)
    assert keys.split_refresh_token("garbage") is None
    assert keys.split_refresh_token(f"{SESSION}.") is None
    assert keys.refresh_secret_digest(secret) != keys.refresh_secret_digest(secret + "x")
