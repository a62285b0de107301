"""The two views the pipeline decodes (embed_svc/images.py): a small detection view first,
then a face view just fine enough for the faces; coordinates of both map onto the original
image, EXIF orientation included, and every format and limit still holds."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from embed_svc import images
from embed_svc.images import (
    DETECT_SIDE,
    FACE_SIDE,
    ImageError,
    ImageLimits,
    decode_for_detection,
    decode_image,
    face_view,
)
from embed_svc.types import DecodedImage

LIMITS = ImageLimits(max_bytes=32 * 1024 * 1024, max_pixels=40_000_000, max_detect_size=1920)
#: A white square on grey in a 4000 x 3000 image: (left, top, right, bottom), source pixels.
SQUARE = (2400, 1000, 3200, 1800)


def _photo(width: int = 4000, height: int = 3000) -> Image.Image:
    pixels = np.full((height, width, 3), 96, dtype=np.uint8)
    left, top, right, bottom = SQUARE
    pixels[top:bottom, left:right] = 255
    return Image.fromarray(pixels)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _square_in_source(view: DecodedImage) -> tuple[float, float, float, float]:
    """The white square's box found in ``view``, mapped to the source image's pixels."""
    ys, xs = np.nonzero(view.work[:, :, 0] > 200)
    scale = view.work_scale
    return (xs.min() * scale, ys.min() * scale, (xs.max() + 1) * scale, (ys.max() + 1) * scale)


def _drafts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    drafted: list[tuple[int, int]] = []
    original = JpegImageFile.draft

    def spy(self: JpegImageFile, mode: str | None, size: tuple[int, int] | None) -> object:
        result = original(self, mode, size)
        drafted.append(self.size)
        return result

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    return drafted


def _loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Sizes of the JPEGs whose pixels get decoded from now on (by libjpeg-turbo directly or
    by Pillow's decoder)."""
    loaded: list[tuple[int, int]] = []
    turbo = images._decode_jpeg
    pillow = JpegImageFile.load_prepare  # called once per decode, unlike load()

    def spy_turbo(data: bytes, size: tuple[int, int]) -> np.ndarray:
        loaded.append(size)
        return turbo(data, size)

    def spy_pillow(self: JpegImageFile) -> None:
        loaded.append(self.size)
        pillow(self)

    monkeypatch.setattr(images, "_decode_jpeg", spy_turbo)
    monkeypatch.setattr(JpegImageFile, "load_prepare", spy_pillow)
    return loaded


def test_large_jpeg_is_decoded_small_for_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    drafted = _drafts(monkeypatch)
    data = _encode(_photo(), "JPEG", quality=95)
    view = decode_for_detection(data, LIMITS)
    assert drafted == [(1000, 750)]  # 1/4 scale: 1/8 would be under DETECT_SIDE
    assert max(view.work.shape[:2]) <= DETECT_SIDE
    assert (view.width, view.height) == (4000, 3000)
    assert view.fine is None and view.encoded == data
    for found, expected in zip(_square_in_source(view), SQUARE, strict=True):
        assert found == pytest.approx(expected, abs=2 * view.work_scale)


def test_face_view_is_decoded_again_as_coarse_as_the_face_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _encode(_photo(), "JPEG", quality=95)
    detection = decode_for_detection(data, LIMITS)
    loads = _loads(monkeypatch)
    face = SQUARE[2] - SQUARE[0]  # 800 source pixels: 1/4 scale would leave it 200 px wide
    view = face_view(detection, face, LIMITS)
    assert loads == [(2000, 1500)]
    assert view.work.shape == (1440, 1920, 3)  # then capped at the max detection size
    assert face / view.work_scale >= FACE_SIDE
    for found, expected in zip(_square_in_source(view), SQUARE, strict=True):
        assert found == pytest.approx(expected, abs=2 * view.work_scale)


def test_face_view_of_a_large_face_is_the_draft_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encode(_photo(), "JPEG", quality=95)
    detection = decode_for_detection(data, LIMITS)
    drafted = _drafts(monkeypatch)
    loads = _loads(monkeypatch)
    view = face_view(detection, 1500.0, LIMITS)  # 1/4 scale leaves it 375 px wide
    assert drafted == [(1000, 750)]
    assert loads == []  # the detection view's decode at 1/4 is reused, not decoded again
    assert detection.decoded is not None and np.shares_memory(view.work, detection.decoded)
    assert view.work.shape == (750, 1000, 3)
    assert view.work_scale == pytest.approx(4.0)
    assert np.array_equal(view.work, decode_image(data, LIMITS, 1000).work)


def test_small_faces_get_the_working_copy_of_before() -> None:
    data = _encode(_photo(), "JPEG", quality=95)
    view = face_view(decode_for_detection(data, LIMITS), 100.0, LIMITS)
    assert np.array_equal(view.work, decode_image(data, LIMITS).work)
    assert view.work_scale == pytest.approx(4000 / 1920)


def test_face_view_is_the_detection_view_when_that_is_fine_enough() -> None:
    data = _encode(_photo(), "JPEG", quality=95)
    detection = decode_for_detection(data, LIMITS)
    assert face_view(detection, 4000.0, LIMITS) is detection


def test_both_views_honour_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _encode(_photo(), "JPEG", quality=95, exif=exif.tobytes())
    detection = decode_for_detection(data, LIMITS)
    assert (detection.width, detection.height) == (3000, 4000)
    # Clockwise: stored (x, y) is displayed at (height - 1 - y, x).
    left, top, right, bottom = SQUARE
    expected = (3000 - bottom, left, 3000 - top, right)
    for view in (detection, face_view(detection, 800.0, LIMITS)):
        assert view.work.shape[0] > view.work.shape[1]
        for found, wanted in zip(_square_in_source(view), expected, strict=True):
            assert found == pytest.approx(wanted, abs=2 * view.work_scale)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_other_formats_decode_once_and_keep_the_working_copy(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    params: dict[str, object] = {"lossless": True} if fmt == "WEBP" else {}
    data = _encode(_photo(2000, 1500), fmt, **params)
    detection = decode_for_detection(data, LIMITS)
    assert np.array_equal(detection.work, decode_image(data, LIMITS).work)
    assert detection.fine is not None and detection.encoded == b""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "_load", forbidden)
    view = face_view(detection, 100.0, LIMITS)
    assert np.array_equal(view.work, detection.fine)
    assert view.work.shape == (1440, 1920, 3)
    assert view.work_scale == pytest.approx(2000 / 1920)


def test_small_jpeg_is_decoded_once_at_full_size(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encode(_photo(800, 600), "JPEG", quality=95)
    detection = decode_for_detection(data, LIMITS)  # 1/2 scale would be under DETECT_SIDE
    assert detection.work.shape == (600, 800, 3)
    assert detection.fine is detection.work
    monkeypatch.setattr(images, "_load", lambda *a, **k: pytest.fail("decoded again"))
    assert face_view(detection, 100.0, LIMITS).work.shape == (600, 800, 3)


def test_decompression_bomb_is_refused_from_its_header_for_detection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _encode(Image.new("1", (8000, 8000)), "PNG")

    def forbidden(self: Image.Image) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", forbidden)
    with pytest.raises(ImageError) as caught:
        decode_for_detection(data, LIMITS)
    assert (caught.value.reason, caught.value.compreface_code) == ("IMAGE_TOO_LARGE", 26)
