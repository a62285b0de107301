"""Image decoding with limits: format sniffing, pixel limits read from the header, EXIF
orientation, RGB conversion and the downscaled working copies.

The pipeline decodes a JPEG as small as it can, twice: a detection view (about
``DETECT_SIDE``, twice the detector's input) first, then, once the faces are known, a face view
just fine enough for the smallest face (``FACE_SIDE`` px wide, never finer than the working copy
at the max detection size) that the second look, landmarks, chips and crops use; each at 1/2,
1/4 or 1/8 scale in the DCT domain (Pillow's draft mode); when the face view needs the DCT scale
the detection view was decoded at (a large face), that decode's pixels are reused, not decoded
again. Another format, or a JPEG no reduced scale shrinks, is decoded once and its working copy
serves both. Coordinates are always reported in the full oriented image's pixels.

A decompression bomb is refused before its pixels are decoded: Pillow's ``Image.open`` reads
only the header, and the pixel count is checked before anything is decoded.

A colour or grey JPEG is decoded by libjpeg-turbo through ``simplejpeg`` straight into the
array the pipeline uses (the same pixels as Pillow's decoder at the same DCT scale, without its
intermediate copies; about half the CPU of a full-size decode), its EXIF orientation applied as
Pillow's ``exif_transpose`` would; anything else (CMYK JPEGs, other formats) goes through Pillow.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import simplejpeg
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from embed_svc.types import DecodedImage, RgbImage
from facegrid.image_formats import sniff

#: Longest side of the detection view, pixels: 2.5 times the detector's 256 px input, so the
#: letterbox still averages over 2x2 pixels per input pixel (512 moved borderline detections on
#: CelebA photos of 1,024-1,279 px; docs/benchmarks.md).
DETECT_SIDE = 640
#: Width a face keeps in the face view, pixels (dlib's chip shows it about 100 px wide, the
#: second look's crop 120 px).
FACE_SIDE = 256

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
    """Longest side of the finest working copy used for detection and alignment, pixels."""


def decode_image(data: bytes, limits: ImageLimits, longest: int | None = None) -> DecodedImage:
    """Decodes ``data`` into an EXIF-oriented RGB working copy whose longer side is at most
    ``longest`` pixels (default and most: the max detection size).

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
    side = limits.max_detect_size if longest is None else min(longest, limits.max_detect_size)
    pixels, width, height = _load(data, fmt.name, limits, side)
    if fmt.name == "JPEG" and max(pixels.shape[:2]) < min(
        max(width, height), limits.max_detect_size
    ):
        # Decoded small: a finer view will be decoded again, at the scale the faces need.
        return _view(pixels, side, width, height, fmt.name, encoded=data, decoded=pixels)
    # Decoded in full anyway (another format, a JPEG too small for a reduced DCT scale): the
    # working copy serves detection and faces, as fine as it always was.
    fine = _working_copy(pixels, limits.max_detect_size)
    return _view(fine, limits.max_detect_size, width, height, fmt.name, fine=fine)


def decode_for_detection(data: bytes, limits: ImageLimits) -> DecodedImage:
    """The detection view of ``data``: a JPEG that a reduced DCT scale shrinks is decoded to
    about ``DETECT_SIDE`` px (a finer face view is decoded later, ``face_view``); anything
    else is decoded in full and gives the working copy at the max detection size."""
    return decode_image(data, limits, DETECT_SIDE)


def face_view(image: DecodedImage, smallest_face: float, limits: ImageLimits) -> DecodedImage:
    """The view of ``image`` to cut faces from: coarse enough to leave the smallest face
    (``smallest_face`` source pixels wide) ``FACE_SIDE`` px wide, never finer than the working
    copy at the max detection size; ``image`` itself when it is that fine already."""
    width, height = image.width, image.height
    finest = max(1.0, max(width, height) / limits.max_detect_size)
    wanted = max(finest, smallest_face / FACE_SIDE)
    if image.work_scale <= wanted * 1.000001:
        return image
    if image.fine is not None:
        return _view(image.fine, limits.max_detect_size, width, height, image.format, image.fine)
    side = max(width, height) / wanted
    if image.decoded is not None and _draft_longest(image.encoded, side) == max(
        image.decoded.shape[:2]
    ):
        # The same DCT scale as the detection view's decode: the same pixels, not decoded again.
        pixels = image.decoded
    else:
        pixels, _, _ = _load(image.encoded, image.format, limits, side)
    return _view(pixels, limits.max_detect_size, width, height, image.format, encoded=image.encoded)


def _view(
    pixels: RgbImage,
    side: int,
    width: int,
    height: int,
    fmt: str,
    fine: RgbImage | None = None,
    encoded: bytes = b"",
    decoded: RgbImage | None = None,
) -> DecodedImage:
    work = _working_copy(pixels, side)
    return DecodedImage(
        work=work,
        work_scale=width / work.shape[1],
        width=width,
        height=height,
        format=fmt,
        encoded=encoded,
        fine=fine,
        decoded=decoded,
    )


def _load(data: bytes, fmt: str, limits: ImageLimits, side: float) -> tuple[RgbImage, int, int]:
    """(pixels, oriented width, oriented height); a JPEG is decoded at the coarsest DCT scale
    that still leaves its longer side at least ``side`` pixels."""
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
            if fmt == "JPEG":
                _draft(image, side)
            stored = image.size
            if fmt == "JPEG" and image.mode in _TURBO_MODES:
                pixels = _oriented(_decode_jpeg(data, stored), _orientation(image))
            else:
                image.load()
                ImageOps.exif_transpose(image, in_place=True)  # no copy when nothing to do
                pixels = _to_rgb(image)
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
    return pixels, width, height


#: Pillow modes of the JPEGs libjpeg-turbo decodes to RGB itself (YCbCr or RGB, and grey).
_TURBO_MODES = frozenset({"RGB", "L"})


def _decode_jpeg(data: bytes, size: tuple[int, int]) -> RgbImage:
    """The JPEG's RGB pixels at the DCT scale that gives ``size`` (Pillow's draft choice);
    libjpeg-turbo's warnings (a truncated file) are errors."""
    width, height = size
    pixels = simplejpeg.decode_jpeg(
        data, colorspace="RGB", min_width=width, min_height=height, strict=True
    )
    if pixels.shape[:2] != (height, width):
        raise ValueError(f"decoded {pixels.shape[1]}x{pixels.shape[0]}, expected {width}x{height}")
    return pixels


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1-8) of ``image``'s header; 1 when absent or invalid."""
    value = image.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _oriented(pixels: RgbImage, orientation: int) -> RgbImage:
    """``pixels`` turned upright for an EXIF ``orientation``, as Pillow's ``exif_transpose``."""
    if orientation == 1:
        return pixels
    turned = {
        2: pixels[:, ::-1],
        3: pixels[::-1, ::-1],
        4: pixels[::-1],
        5: pixels.transpose(1, 0, 2),
        6: pixels.transpose(1, 0, 2)[:, ::-1],
        7: pixels[::-1, ::-1].transpose(1, 0, 2),
        8: pixels.transpose(1, 0, 2)[::-1],
    }[orientation]
    return np.ascontiguousarray(turned)


def _draft(image: Image.Image, side: float) -> None:
    """Asks a JPEG's decoder for 1/2, 1/4 or 1/8 scale in the DCT domain when that still leaves
    the longer side at least ``side`` pixels."""
    longest = max(image.width, image.height)
    if longest > side:
        factor = side / longest
        image.draft("RGB", (math.ceil(image.width * factor), math.ceil(image.height * factor)))


def _draft_longest(encoded: bytes, side: float) -> int:
    """The longer side, pixels, that ``_load`` would decode the JPEG ``encoded`` at for
    ``side`` (its header only is read)."""
    with Image.open(io.BytesIO(encoded), formats=["JPEG"]) as image:
        _draft(image, side)
        return max(image.size)


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
    if image.mode != "RGB":
        image = image.convert("RGB")  # convert() copies even an image already in RGB
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _working_copy(pixels: RgbImage, max_side: int) -> RgbImage:
    height, width = pixels.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return pixels
    factor = max_side / longest
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.ascontiguousarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))
