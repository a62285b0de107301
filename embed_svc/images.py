"""Image decoding with limits: format sniffing, pixel limits read from the header, EXIF
orientation, RGB conversion and the downscaled working copy for detection.

A decompression bomb is refused before its pixels are decoded: Pillow's ``Image.open`` reads
only the header, and the pixel count is checked before ``load``.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from embed_svc.types import DecodedImage, RgbImage
from facegrid.image_formats import sniff

#: Formats accepted, in the words of CompreFace's documentation.
SUPPORTED_FORMATS = "jpeg, png, bmp, gif, tiff, webp, ico"


class ImageError(ValueError):
    """An image was refused; ``reason`` is a stable UPPER_SNAKE code."""

    def __init__(self, reason: str, message: str, compreface_code: int) -> None:
        super().__init__(message)
        self.reason = reason
        """Stable reason: EMPTY_IMAGE, UNSUPPORTED_IMAGE_FORMAT, UNREADABLE_IMAGE,
        IMAGE_TOO_LARGE."""
        self.message = message
        """Short message naming the problem."""
        self.compreface_code = compreface_code
        """CompreFace's error code (21 for a format not allowed, 26 otherwise)."""


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Limits applied to every decoded image."""

    max_bytes: int
    """Largest encoded image, bytes."""
    max_pixels: int
    """Largest decoded image, width x height pixels."""
    max_detect_size: int
    """Longest side of the working copy used for detection and alignment, pixels."""


def decode_image(data: bytes, limits: ImageLimits) -> DecodedImage:
    """Decodes ``data`` into the working copy of the EXIF-oriented RGB image.

    Raises ImageError when the data is empty, too large, of another format, or corrupt.
    """
    if not data:
        raise ImageError("EMPTY_IMAGE", "the image is empty", 26)
    if len(data) > limits.max_bytes:
        raise ImageError(
            "IMAGE_TOO_LARGE",
            f"the image has {len(data)} bytes; the limit is {limits.max_bytes}",
            26,
        )
    fmt = sniff(data)
    if fmt is None:
        raise ImageError(
            "UNSUPPORTED_IMAGE_FORMAT",
            f"the image is not in a supported format ({SUPPORTED_FORMATS})",
            21,
        )
    return _load(data, fmt.name, limits)


def _load(data: bytes, fmt: str, limits: ImageLimits) -> DecodedImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = image.size
            if width <= 0 or height <= 0:
                raise ImageError("UNREADABLE_IMAGE", "the image has no pixels", 26)
            if width * height > limits.max_pixels:
                raise ImageError(
                    "IMAGE_TOO_LARGE",
                    f"the image is {width}x{height} pixels; "
                    f"the limit is {limits.max_pixels} pixels",
                    26,
                )
            longest = max(width, height)
            if fmt == "JPEG" and longest > limits.max_detect_size:
                # Decode at 1/2, 1/4 or 1/8 scale in the DCT domain when that still leaves at
                # least the working size: only the working copy is ever used.
                factor = limits.max_detect_size / longest
                image.draft(
                    "RGB", (math.ceil(image.width * factor), math.ceil(image.height * factor))
                )
            image.load()
            stored = image.size
            pixels = _to_rgb(ImageOps.exif_transpose(image))
            if (pixels.shape[1], pixels.shape[0]) != stored:  # EXIF rotated by 90 degrees
                width, height = height, width
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("IMAGE_TOO_LARGE", "the image has too many pixels", 26) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(
            "UNREADABLE_IMAGE", f"the {fmt.lower()} image is truncated or corrupt", 26
        ) from exc
    except Exception as exc:  # any decoder failure is a bad image, not a crash
        raise ImageError(
            "UNREADABLE_IMAGE", f"the {fmt.lower()} image is truncated or corrupt", 26
        ) from exc
    work = _working_copy(pixels, limits.max_detect_size)
    return DecodedImage(
        work=work,
        work_scale=width / work.shape[1],
        width=width,
        height=height,
        format=fmt,
    )


def _to_rgb(image: Image.Image) -> RgbImage:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        gray = np.asarray(image, dtype=np.float64)
        peak = float(gray.max()) if gray.size else 0.0
        if peak > 255.0:
            gray = gray * (255.0 / (65535.0 if peak <= 65535.0 else peak))
        gray8 = np.clip(gray, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray8[:, :, None], 3, axis=2))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _working_copy(pixels: RgbImage, max_side: int) -> RgbImage:
    height, width = pixels.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return pixels
    factor = max_side / longest
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.ascontiguousarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))
