"""The shared schema contract matches the SQL that admin_svc applies."""

import hashlib
import uuid

from admin_svc.migrate import load_migrations
from facegrid.image_formats import sniff
from facegrid.schema import CHANGES_CHANNEL, WRITES_BLOCKED_SQLSTATE, api_key_digest


def test_the_migrations_spell_the_channel_and_sqlstate_of_the_contract() -> None:
    sql = "\n".join(m.sql for m in load_migrations())
    assert f"pg_notify('{CHANGES_CHANNEL}'" in sql
    assert f"ERRCODE = '{WRITES_BLOCKED_SQLSTATE}'" in sql
    assert "sha256(uuid_send(api_key))" in sql


def test_the_api_key_digest_is_sha256_of_the_16_raw_bytes_not_the_text() -> None:
    key = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
    raw = bytes.fromhex("00112233445566778899aabbccddeeff")
    assert api_key_digest(key) == hashlib.sha256(raw).digest()
    assert api_key_digest(key) != hashlib.sha256(str(key).encode()).digest()


def test_formats_are_told_by_their_leading_bytes() -> None:
    cases = {
        b"\xff\xd8\xff\xe0rest": "image/jpeg",
        b"\x89PNG\r\n\x1a\nrest": "image/png",
        b"GIF89a...": "image/gif",
        b"BMxxxx": "image/bmp",
        b"II*\x00rest": "image/tiff",
        b"RIFF\x10\x00\x00\x00WEBPVP8 ": "image/webp",
        b"\x00\x00\x01\x00rest": "image/x-icon",
    }
    for data, media_type in cases.items():
        found = sniff(data)
        assert found is not None and found.media_type == media_type, data
    assert sniff(b"XXXX\x10\x00\x00\x00WEBPVP8 ") is None  # WEBP without RIFF
    assert sniff(b"nothing") is None
