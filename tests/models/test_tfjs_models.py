"""faceres-deep and mobileface: the project's TFJS->ONNX conversions against TensorFlow.js on
real faces, what their outputs mean, and the converter on operator settings those two models
do not exercise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import build, tfjs_reference
from models.tfjs_onnx import TfjsConversionError, convert
from models.verify import MIN_COSINE, compare, cosines, session
from tests.models.face_chips import Face, aligned_112, box_crop


@pytest.fixture(scope="module")
def installed(repository: Path) -> Path:
    """TensorFlow.js, installed by the build."""
    return build.tfjs()


@pytest.fixture(scope="module")
def crops(faces: list[Face]) -> np.ndarray:
    """Square detector-box crops, 224 px, RGB uint8; the astronaut first."""
    return np.stack([box_crop(face, 224) for face in faces])


@pytest.mark.integration
def test_faceres_deep_matches_tensorflow_js_on_real_faces(
    installed: Path, crops: np.ndarray
) -> None:
    spec = build.TFJS_MODELS["faceres_deep"]
    assert spec.transform is not None
    batch = crops[:4]
    floats = batch.astype(np.float32)
    want = tfjs_reference.run(
        installed, build.human_model(spec.stem), spec.transform.apply(floats), list(spec.outputs)
    )
    got = session(build.onnx_file(build.TRITON_MODELS, "faceres_deep")).run(
        list(spec.outputs.values()), {"input": batch}
    )
    result = compare("faceres_deep", "TensorFlow.js", got, want)  # raises beyond tolerance
    assert result.samples == 4 and result.max_abs_diff < 1e-3, result
    assert result.min_cosine >= MIN_COSINE, result


@pytest.mark.integration
def test_mobileface_matches_tensorflow_js_on_real_faces(installed: Path, faces: list[Face]) -> None:
    spec = build.TFJS_MODELS["mobileface"]
    batch = np.stack([aligned_112(face) for face in faces[:4]])
    floats = batch.astype(np.float32)
    want = tfjs_reference.run(installed, build.human_model(spec.stem), floats, list(spec.outputs))
    got = session(build.onnx_file(build.TRITON_MODELS, "mobileface")).run(
        ["embedding"], {"input": batch}
    )
    result = compare("mobileface", "TensorFlow.js", got, want)  # raises beyond tolerance
    assert result.samples == 4 and result.max_abs_diff < 1e-3, result
    assert result.min_cosine >= MIN_COSINE, result


@pytest.mark.integration
def test_faceres_deep_reads_women_of_plausible_age(crops: np.ndarray) -> None:
    """Every face of the test photos is a woman's, adult, photographed at 20-50."""
    age, gender, descriptor = session(build.onnx_file(build.TRITON_MODELS, "faceres_deep")).run(
        ["age", "gender", "descriptor"], {"input": crops}
    )
    assert age.shape == (len(crops), 100) and descriptor.shape == (len(crops), 1024)
    np.testing.assert_allclose(age.sum(axis=1), 1.0, atol=1e-4)
    years = (age * np.arange(100)).sum(axis=1)
    male = gender[:, 0]
    assert male[0] < 0.2  # the astronaut
    assert np.mean(male < 0.5) >= 0.8
    assert years.min() > 15 and years.max() < 60 and 20 < years.mean() < 45


@pytest.mark.integration
def test_mobileface_finds_each_face_in_its_mirror_image(faces: list[Face]) -> None:
    aligned = np.stack([aligned_112(face) for face in faces])
    mirrored = np.ascontiguousarray(aligned[:, :, ::-1])
    net = session(build.onnx_file(build.TRITON_MODELS, "mobileface"))
    (a,) = net.run(["embedding"], {"input": aligned})
    (b,) = net.run(["embedding"], {"input": mirrored})
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    similarity = a @ b.T
    assert (similarity.argmax(axis=1) == np.arange(len(faces))).all()
    assert cosines(a, b).min() > 0.6


def _tiny_model(
    folder: Path, nodes: list[dict[str, object]], weights: dict[str, np.ndarray]
) -> Path:
    """Writes a TFJS graph model with float32/int32 weights; returns its model.json."""
    specs, blobs = [], []
    for name, value in weights.items():
        dtype = "int32" if value.dtype == np.int32 else "float32"
        specs.append({"name": name, "shape": list(value.shape), "dtype": dtype})
        blobs.append(value.astype("<i4" if dtype == "int32" else "<f4").tobytes())
        tf_type = "DT_INT32" if dtype == "int32" else "DT_FLOAT"
        nodes.append({"name": name, "op": "Const", "attr": {"dtype": {"type": tf_type}}})
    (folder / "tiny.bin").write_bytes(b"".join(blobs))
    model = {
        "format": "graph-model",
        "modelTopology": {"node": nodes, "versions": {"producer": 1}},
        "weightsManifest": [{"paths": ["tiny.bin"], "weights": specs}],
    }
    (folder / "tiny.json").write_text(json.dumps(model))
    return folder / "tiny.json"


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


@pytest.mark.integration
def test_converter_on_asymmetric_same_padding_depth_multiplier_and_dilation(
    installed: Path, tmp_path: Path
) -> None:
    """A graph with what the two models do not cover: SAME padding with an odd total on an
    even input, a depthwise multiplier of 2, dilation, Pad, Mean and a NHWC-order flatten."""
    rng = np.random.default_rng(5)
    conv = lambda stride, dilation: {  # noqa: E731
        "strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}},
        "dilations": {"list": {"i": ["1", str(dilation), str(dilation), "1"]}},
        "padding": {"s": _b64("SAME")},
        "data_format": {"s": _b64("NHWC")},
    }
    nodes: list[dict[str, object]] = [
        {
            "name": "x",
            "op": "Placeholder",
            "attr": {
                "shape": {
                    "shape": {
                        "dim": [{"size": "-1"}, {"size": "10"}, {"size": "10"}, {"size": "3"}]
                    }
                }
            },
        },
        {"name": "c1", "op": "Conv2D", "input": ["x", "w1"], "attr": conv(2, 1)},
        {"name": "d1", "op": "DepthwiseConv2dNative", "input": ["c1", "w2"], "attr": conv(1, 2)},
        {"name": "b1", "op": "AddV2", "input": ["d1", "bias"]},
        {"name": "p1", "op": "Pad", "input": ["b1", "pads"]},
        {"name": "r1", "op": "Relu", "input": ["p1"]},
        {"name": "m1", "op": "Mean", "input": ["r1", "axes"], "attr": {"keep_dims": {"b": False}}},
        {"name": "f1", "op": "Reshape", "input": ["r1", "shape"]},
        {"name": "o1", "op": "MatMul", "input": ["f1", "dense"]},
        {"name": "o2", "op": "Sigmoid", "input": ["o1"]},
    ]
    weights = {
        "w1": rng.normal(size=(3, 3, 3, 5)).astype(np.float32),
        "w2": rng.normal(size=(3, 3, 5, 2)).astype(np.float32),
        "bias": rng.normal(size=(10,)).astype(np.float32),
        "pads": np.array([[0, 0], [1, 0], [0, 2], [0, 0]], np.int32),
        "axes": np.array([1, 2], np.int32),
        "shape": np.array([-1, 6 * 7 * 10], np.int32),
        "dense": rng.normal(size=(6 * 7 * 10, 4)).astype(np.float32) / 20,
    }
    model_json = _tiny_model(tmp_path, nodes, weights)
    outputs = {"m1": "mean", "o2": "dense"}
    converted = tmp_path / "tiny.onnx"
    converted.write_bytes(convert(model_json, outputs, "tiny").SerializeToString())
    batch = rng.uniform(0, 1, (2, 10, 10, 3)).astype(np.float32)
    want = tfjs_reference.run(installed, model_json, batch, list(outputs))
    got = session(converted).run(list(outputs.values()), {"input": batch})
    result = compare("tiny", "TensorFlow.js", got, want)  # raises beyond tolerance
    assert result.samples == 2 and result.max_abs_diff < 1e-4, result


def test_converter_refuses_unknown_operators(tmp_path: Path) -> None:
    nodes: list[dict[str, object]] = [
        {
            "name": "x",
            "op": "Placeholder",
            "attr": {
                "shape": {
                    "shape": {"dim": [{"size": "-1"}, {"size": "4"}, {"size": "4"}, {"size": "3"}]}
                }
            },
        },
        {"name": "y", "op": "Tanh", "input": ["x"]},
    ]
    with pytest.raises(TfjsConversionError, match="Tanh"):
        convert(_tiny_model(tmp_path, nodes, {}), {"y": "y"}, "tiny")
