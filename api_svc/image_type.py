"""The media type of an image, told by its first bytes (JSON base64 bodies carry none)."""

from __future__ import annotations

#: (offset, magic bytes, media type) of the formats CompreFace accepts.
_SIGNATURES = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (8, b"WEBP", "image/webp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"\x00\x00\x01\x00", "image/x-icon"),
)


def content_type_of(data: bytes) -> str:
    """``image/...`` for a known format; else ``application/octet-stream``."""
    for offset, magic, media_type in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return media_type
    return "application/octet-stream"
