"""Image decoding: every accepted format, EXIF orientation, limits and refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps
from PIL.JpegImagePlugin import JpegImageFile

from embed_svc.images import ImageError, ImageLimits, decode_for_detection, decode_image

LIMITS = ImageLimits(max_bytes=5 * 1024 * 1024, max_pixels=40_000_000, max_detect_size=1920)


def _gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=2))


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP", "ICO"])
def test_every_supported_format_decodes_to_rgb(fmt: str) -> None:
    params: dict[str, object] = {"sizes": [(64, 48)]} if fmt == "ICO" else {}
    data = _encode(_gradient(), fmt, **params)
    decoded = decode_image(data, LIMITS)
    assert decoded.format == fmt
    assert decoded.work.dtype == np.uint8
    assert decoded.work.shape == (48, 64, 3)
    # The colours survive (GIF and ICO quantise; JPEG and WEBP are lossy).
    assert abs(int(decoded.work[24, 60, 0]) - 243) < 40


def test_grayscale_and_alpha_become_rgb() -> None:
    gray = decode_image(_encode(_gradient().convert("L"), "PNG"), LIMITS)
    assert gray.work.shape == (48, 64, 3)
    rgba = _gradient().convert("RGBA")
    rgba.putalpha(0)  # fully transparent: composited onto white
    decoded = decode_image(_encode(rgba, "PNG"), LIMITS)
    assert (decoded.work == 255).all()


def test_sixteen_bit_png_is_scaled_to_eight_bits() -> None:
    values = np.full((10, 10), 65535, dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    decoded = decode_image(_encode(image, "PNG"), LIMITS)
    assert decoded.work.max() == 255


def test_exif_orientation_is_applied() -> None:
    image = _gradient(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_image(_encode(image, "JPEG", exif=exif.tobytes()), LIMITS)
    assert decoded.width == 48 and decoded.height == 64
    # The left column (red ~0) becomes the top row after a clockwise rotation.
    assert decoded.work[0, :, 0].mean() < 40
    assert decoded.work[-1, :, 0].mean() > 200


def _pillow_reference(data: bytes, scale_to: tuple[int, int] | None = None) -> np.ndarray:
    """What Pillow's own decoder, exif_transpose and convert give for ``data``."""
    opened = Image.open(io.BytesIO(data))
    if scale_to is not None:
        opened.draft("RGB", scale_to)
    upright = ImageOps.exif_transpose(opened.convert("RGB") if opened.mode == "CMYK" else opened)
    return np.asarray(upright.convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_jpeg_pixels_and_orientation_match_pillows_decoder(mode: str, orientation: int) -> None:
    noise = np.random.default_rng(orientation).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(Image.fromarray(noise).convert(mode), "JPEG", exif=exif.tobytes())
    decoded = decode_image(data, LIMITS)
    expected = _pillow_reference(data)
    assert decoded.work.shape == expected.shape
    assert np.array_equal(decoded.work, expected)
    assert (decoded.width, decoded.height) == (expected.shape[1], expected.shape[0])


def test_jpeg_decoded_at_a_dct_scale_matches_pillows_draft() -> None:
    noise = np.random.default_rng(3).integers(0, 255, (2400, 3200, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 8
    data = _encode(Image.fromarray(noise), "JPEG", exif=exif.tobytes(), quality=60)
    decoded = decode_for_detection(data, LIMITS)
    expected = _pillow_reference(data, (800, 600))  # 1/4 scale: 800 x 600, then turned
    assert expected.shape == (800, 600, 3)
    assert decoded.decoded is not None and np.array_equal(decoded.decoded, expected)


def test_large_images_get_a_downscaled_working_copy() -> None:
    limits = ImageLimits(
        max_bytes=LIMITS.max_bytes, max_pixels=LIMITS.max_pixels, max_detect_size=100
    )
    decoded = decode_image(_encode(_gradient(400, 200), "PNG"), limits)
    assert (decoded.width, decoded.height) == (400, 200)
    assert decoded.work.shape == (50, 100, 3)
    assert decoded.work_scale == pytest.approx(4.0)


def test_large_jpeg_is_decoded_at_a_reduced_scale_with_its_orientation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drafted: list[tuple[int, int]] = []
    original_draft = JpegImageFile.draft

    def spy(self: JpegImageFile, mode: str | None, size: tuple[int, int] | None) -> object:
        result = original_draft(self, mode, size)
        drafted.append(self.size)
        return result

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    image = _gradient(4000, 3000)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _encode(image, "JPEG", exif=exif.tobytes(), quality=90)
    limits = ImageLimits(LIMITS.max_bytes, LIMITS.max_pixels, max_detect_size=900)
    decoded = decode_image(data, limits)
    assert drafted == [(1000, 750)]  # decoded at 1/4 scale, still above 900 px
    assert (decoded.width, decoded.height) == (3000, 4000)
    assert decoded.work.shape == (900, 675, 3)
    assert decoded.work_scale == pytest.approx(3000 / 675)
    # Red rises from left to right in the stored image: from top to bottom once rotated.
    assert decoded.work[5, :, 0].mean() < 30 and decoded.work[-5, :, 0].mean() > 225


def test_small_images_work_on_the_original() -> None:
    decoded = decode_image(_encode(_gradient(), "PNG"), LIMITS)
    assert decoded.work.shape == (48, 64, 3)
    assert decoded.work_scale == 1.0


def _reason(data: bytes, limits: ImageLimits = LIMITS) -> tuple[str, int]:
    with pytest.raises(ImageError) as caught:
        decode_image(data, limits)
    return caught.value.reason, caught.value.compreface_code


def test_empty_image_is_refused() -> None:
    assert _reason(b"") == ("EMPTY_IMAGE", 26)


def test_other_formats_and_non_images_are_unsupported() -> None:
    assert _reason(b"%PDF-1.4 not an image") == ("UNSUPPORTED_IMAGE_FORMAT", 21)
    assert _reason(b"hello world, this is text") == ("UNSUPPORTED_IMAGE_FORMAT", 21)
    assert _reason(b"RIFF\x00\x00\x00\x00WAVEfmt ") == ("UNSUPPORTED_IMAGE_FORMAT", 21)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_image_is_unreadable(fmt: str) -> None:
    noise = np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), fmt)
    assert _reason(data[: len(data) // 2]) == ("UNREADABLE_IMAGE", 26)


def test_corrupt_header_is_unreadable() -> None:
    assert _reason(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40) == ("UNREADABLE_IMAGE", 26)


def test_too_many_bytes_is_refused() -> None:
    data = _encode(_gradient(), "PNG")
    small = ImageLimits(max_bytes=len(data) - 1, max_pixels=LIMITS.max_pixels, max_detect_size=64)
    assert _reason(data, small) == ("IMAGE_TOO_LARGE", 26)


def test_decompression_bomb_is_refused_from_its_header() -> None:
    # A 20000 x 20000 black PNG compresses to a few hundred kilobytes.
    bomb = Image.new("1", (20000, 20000))
    data = _encode(bomb, "PNG")
    assert len(data) < LIMITS.max_bytes
    reason, code = _reason(data)
    assert (reason, code) == ("IMAGE_TOO_LARGE", 26)


def test_pixel_limit_is_configurable() -> None:
    limits = ImageLimits(max_bytes=LIMITS.max_bytes, max_pixels=64 * 48 - 1, max_detect_size=64)
    assert _reason(_encode(_gradient(), "PNG"), limits)[0] == "IMAGE_TOO_LARGE"


def test_pixel_limit_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    # 8000 x 8000 is above our 40 MP limit but below Pillow's own bomb limit, so only our
    # header check can refuse it; decoding it would call load(), which must not happen.
    data = _encode(Image.new("1", (8000, 8000)), "PNG")

    def forbidden(self: Image.Image) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", forbidden)
    assert _reason(data) == ("IMAGE_TOO_LARGE", 26)
