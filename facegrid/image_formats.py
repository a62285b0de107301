"""The image formats CompreFace accepts, told by their leading bytes: one table for api_svc
(the media type stored with a face example) and embed_svc (which decoder to trust)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImageFormat:
    """An accepted container format."""

    name: str
    """Pillow's name of the format, e.g. ``JPEG``."""
    media_type: str
    """Its media type, e.g. ``image/jpeg``."""


JPEG = ImageFormat("JPEG", "image/jpeg")
PNG = ImageFormat("PNG", "image/png")
GIF = ImageFormat("GIF", "image/gif")
BMP = ImageFormat("BMP", "image/bmp")
TIFF = ImageFormat("TIFF", "image/tiff")
WEBP = ImageFormat("WEBP", "image/webp")
ICO = ImageFormat("ICO", "image/x-icon")

#: (offset, magic bytes, format), tried in order. WebP is a RIFF container: ``RIFF`` at 0 and
#: ``WEBP`` at 8.
SIGNATURES: tuple[tuple[int, bytes, ImageFormat], ...] = (
    (0, b"\xff\xd8\xff", JPEG),
    (0, b"\x89PNG\r\n\x1a\n", PNG),
    (0, b"GIF87a", GIF),
    (0, b"GIF89a", GIF),
    (0, b"BM", BMP),
    (0, b"II*\x00", TIFF),
    (0, b"MM\x00*", TIFF),
    (8, b"WEBP", WEBP),
    (0, b"\x00\x00\x01\x00", ICO),
)


def sniff(data: bytes) -> ImageFormat | None:
    """The format of ``data`` by its leading bytes, or None when it is not an accepted one."""
    for offset, magic, image_format in SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            if image_format is WEBP and data[:4] != b"RIFF":
                continue
            return image_format
    return None


def media_type_of(data: bytes) -> str:
    """``image/...`` for an accepted format; else ``application/octet-stream``."""
    found = sniff(data)
    return found.media_type if found is not None else "application/octet-stream"
