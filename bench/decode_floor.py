"""What decoding a JPEG costs at each DCT scale (issue 13's floor): CPU per photo of
libjpeg-turbo (``simplejpeg``, as embed_svc/images.py calls it) decoding the one-face photos at
the scale the pipeline uses for its detection view, and at the other scales it could use.

    python -m bench.decode_floor [--photos 20] [--repeats 9] [--faces DIR]

Scales, per photo, each followed by the INTER_AREA resize to the detection view's
``DETECT_SIDE`` px where the decode is larger, as the pipeline does:

- ``pipeline``: the coarsest of 1/1, 1/2, 1/4, 1/8 that leaves the longer side at least
  ``DETECT_SIDE`` px (Pillow's draft choice, which the pipeline keeps for identical pixels);
  the baseline of the ratios.
- ``m/8``: the coarsest of libjpeg-turbo's M/8 scales (M = 1..8) that leaves at least
  ``DETECT_SIDE`` px; other pixels than the pipeline's, so its detector would need
  bench/accuracy.py's run.
- ``1/8``: the coarsest scale libjpeg-turbo has, whatever the size (too coarse for detection):
  what no choice of scale can go under, as every coefficient is entropy-decoded at any scale.
- ``full``: the whole image, for reference.

Each configuration's figure is the median of ``--repeats`` decodes (CPU time of this process,
one thread), the configurations alternating photo by photo; the summary gives the mean per
photo, the ratio to ``pipeline`` and the progressive files' share.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from bench.data import faces_dir
from bench.throughput import one_face_photos
from embed_svc.images import DETECT_SIDE, _draft
from embed_svc.types import RgbImage

SCALES = ("pipeline", "m/8", "1/8", "full")


def _detection_view(pixels: RgbImage) -> RgbImage:
    longest = max(pixels.shape[:2])
    if longest <= DETECT_SIDE:
        return pixels
    factor = DETECT_SIDE / longest
    size = (max(1, round(pixels.shape[1] * factor)), max(1, round(pixels.shape[0] * factor)))
    return np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))


def decoders(data: bytes) -> dict[str, Callable[[], RgbImage]]:
    """One decode-and-resize per scale of ``SCALES`` for the JPEG ``data``."""
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
        width, height = image.size
        _draft(image, DETECT_SIDE)
        draft = image.size
    fit = DETECT_SIDE / max(width, height)
    at_least = (
        (min(width, math.ceil(width * fit)), min(height, math.ceil(height * fit)))
        if fit < 1
        else (width, height)
    )

    def decode(min_size: tuple[int, int]) -> Callable[[], RgbImage]:
        return lambda: _detection_view(
            simplejpeg.decode_jpeg(
                data, colorspace="RGB", min_width=min_size[0], min_height=min_size[1]
            )
        )

    return {
        "pipeline": decode(draft),
        "m/8": decode(at_least),
        "1/8": decode((1, 1)),
        "full": decode((width, height)),
    }


def cpu_ms(function: Callable[[], object]) -> float:
    """CPU milliseconds of one call."""
    started = time.process_time()
    function()
    return (time.process_time() - started) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=None, help="the photo set (bench.data)")
    parser.add_argument("--photos", type=int, default=20, help="the first one-face photos")
    parser.add_argument("--repeats", type=int, default=9, help="decodes per photo and scale")
    args = parser.parse_args()
    photos = one_face_photos(faces_dir(args.faces))[: args.photos]
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"{len(photos)} photos, {sum(map(len, photos)) // 1024} KiB; median of {args.repeats} "
        f"decodes; detection view {DETECT_SIDE} px",
        flush=True,
    )
    totals = dict.fromkeys(SCALES, 0.0)
    progressive = dict.fromkeys(SCALES, 0.0)
    print(f"{'photo':>11} {'KiB':>5} {'prog':>4} " + " ".join(f"{s:>9}" for s in SCALES))
    for data in photos:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            size = f"{image.width}x{image.height}"
            is_progressive = bool(image.info.get("progressive"))
        calls = decoders(data)
        samples: dict[str, list[float]] = {scale: [] for scale in SCALES}
        for _ in range(args.repeats):
            for scale in SCALES:
                samples[scale].append(cpu_ms(calls[scale]))
        medians = {scale: statistics.median(values) for scale, values in samples.items()}
        for scale, ms in medians.items():
            totals[scale] += ms
            if is_progressive:
                progressive[scale] += ms
        print(
            f"{size:>11} {len(data) // 1024:>5} {'yes' if is_progressive else 'no':>4} "
            + " ".join(f"{medians[s]:>7.1f}ms" for s in SCALES)
        )
    base = totals["pipeline"]
    print("mean per photo, CPU ms (ratio to pipeline; progressive files' share):")
    for scale in SCALES:
        print(
            f"  {scale:>8}: {totals[scale] / len(photos):6.2f} ms "
            f"(x{totals[scale] / base:.2f}; progressive {progressive[scale] / totals[scale]:.0%})"
        )


if __name__ == "__main__":
    main()
