"""Access tokens: signed, expiring, refused when tampered with, foreign or of another shape."""

from __future__ import annotations

import base64
import json
import uuid

import jwt
import pytest

from admin_svc.tokens import TokenError, TokenSigner

SECRET = b"s" * 32
USER, SESSION = uuid.uuid4(), uuid.uuid4()


def test_tokens_round_trip_and_expire() -> None:
    signer = TokenSigner(SECRET, ttl_s=60)
    token, expires = signer.issue(USER, SESSION, now=1_000_000)
    assert expires == 1_000_060
    claims = signer.verify(token, now=1_000_030)
    assert (claims.user_id, claims.session_id, claims.expires_at) == (USER, SESSION, expires)
    with pytest.raises(TokenError) as info:
        signer.verify(token, now=1_000_100)
    assert info.value.problem == "expired"


def test_tampered_or_foreign_tokens_are_refused() -> None:
    signer = TokenSigner(SECRET, ttl_s=60)
    token, _ = signer.issue(USER, SESSION, now=1_000_000)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = str(uuid.uuid4())
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    other, _ = TokenSigner(b"o" * 32, 60).issue(USER, SESSION, now=1_000_000)
    for bad, problem in (
        (f"{header}.{forged_payload}.{signature}", "bad_signature"),
        (f"{none_header}.{payload}.", "bad_signature"),
        (other, "bad_signature"),
        ("a.b", "malformed"),
        ("", "malformed"),
    ):
        with pytest.raises(TokenError) as info:
            signer.verify(bad, now=1_000_000)
        assert info.value.problem == problem
    with pytest.raises(ValueError):
        TokenSigner(b"short", 60)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512, 32 bytes
def test_signed_tokens_of_another_shape_are_refused() -> None:
    signer = TokenSigner(SECRET, ttl_s=60)
    claims = {"sub": str(USER), "sid": str(SESSION), "iat": 1, "exp": 2_000_000, "typ": "access"}
    for changed, problem in (
        ({"typ": "refresh"}, "malformed"),
        ({"sid": None}, "malformed"),
        ({"sub": "not-a-uuid"}, "malformed"),
        ({"exp": "soon"}, "malformed"),
    ):
        token = jwt.encode({**claims, **changed}, SECRET, algorithm="HS256")
        with pytest.raises(TokenError) as info:
            signer.verify(token, now=1_000_000)
        assert info.value.problem == problem, changed
    other_algorithm = jwt.encode(claims, SECRET, algorithm="HS512")
    with pytest.raises(TokenError) as info:
        signer.verify(other_algorithm, now=1_000_000)
    assert info.value.problem == "bad_signature"
    assert signer.verify(jwt.encode(claims, SECRET), now=1_000_000).user_id == USER
