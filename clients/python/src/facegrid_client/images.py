"""Images as the calls take them: a file path, the encoded bytes of a file, or a numpy array.

A path is read as it is; bytes are sent as they are (JPEG, PNG, BMP, GIF, TIFF, WebP or ICO, as
CompreFace accepts); a numpy array (``uint8``, height x width for grey, x 3 for RGB, x 4 for
RGBA; an OpenCV BGR image is ``image[..., ::-1]``) is encoded losslessly as PNG with Pillow
(``pip install 'facegrid-client[numpy]'``). The content type is told from the first bytes.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt

    ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | npt.NDArray[Any]
else:
    ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Any

#: Content types by leading bytes (RIFF/WebP is checked apart: its marker is at offset 8).
_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
)
OCTET_STREAM = "application/octet-stream"


def content_type(data: bytes) -> str:
    """The media type of encoded image bytes, or ``application/octet-stream`` when unknown (the
    service then decides)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    return OCTET_STREAM


def _encode_array(array: Any) -> bytes:
    try:
        from PIL import Image
    except ImportError as missing:
        raise ImportError(
            "numpy images are encoded with Pillow: pip install 'facegrid-client[numpy]'"
        ) from missing
    shape = tuple(array.shape)
    if str(array.dtype) != "uint8":
        raise TypeError(f"a numpy image must be uint8, not {array.dtype}")
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4))):
        raise ValueError(
            f"a numpy image is height x width (grey) or height x width x 1, 3 (RGB) or "
            f"4 (RGBA); got shape {shape}"
        )
    if len(shape) == 3 and shape[2] == 1:
        array = array[:, :, 0]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def read_image(image: ImageSource) -> tuple[bytes, str]:
    """The encoded bytes of ``image`` and their content type."""
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
    elif isinstance(image, str | os.PathLike):
        with open(image, "rb") as file:
            data = file.read()
    elif hasattr(image, "__array_interface__") and hasattr(image, "dtype"):
        data = _encode_array(image)
    else:
        raise TypeError(
            f"an image is a file path, bytes or a numpy array, not {type(image).__name__}"
        )
    if not data:
        raise ValueError("the image is empty")
    return data, content_type(data)
