"""The uint8 front of the converted graphs (models/uint8_input.py) on small graphs written here:
the graph with a uint8 input gives exactly what the float32 graph gives on numpy's
preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models import build
from models.uint8_input import Uint8Input
from models.verify import check_uint8_input, session


def _conv_model(input_shape: list[int | str], name_clash: bool = False) -> onnx.ModelProto:
    """A float32 graph: a 3x3 convolution of a 4-D input (NCHW) plus a bias."""
    rng = np.random.default_rng(3)
    weights = numpy_helper.from_array(rng.normal(size=(2, 3, 3, 3)).astype(np.float32), "w")
    middle = "input_float32" if name_clash else "conv"
    nodes = [
        helper.make_node("Conv", ["input", "w"], [middle], pads=[1, 1, 1, 1]),
        helper.make_node("Add", [middle, "b"], ["output"]),
    ]
    bias = numpy_helper.from_array(np.array([0.5], np.float32).reshape(1, 1, 1, 1), "b")
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_an_nchw_graph_gets_an_nhwc_uint8_input_with_identical_outputs(tmp_path: Path) -> None:
    front = Uint8Input(nchw=True, divisor=127.5, offset=1.0)
    float_graph, uint8_graph = tmp_path / "float.onnx", tmp_path / "uint8.onnx"
    onnx.save(_conv_model(["N", 3, 6, 6]), str(float_graph))
    onnx.save(front.apply(onnx.load(str(float_graph))), str(uint8_graph))
    (value,) = onnx.load(str(uint8_graph)).graph.input
    assert value.type.tensor_type.elem_type == TensorProto.UINT8
    dims = value.type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 6, 6, 3]
    images = np.random.default_rng(4).integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    images[0, 0, 0] = (0, 255, 128)
    want = front.reference(images)
    assert want.dtype == np.float32 and want.shape == (4, 3, 6, 6)
    assert want.min() == -1.0 and want.max() == 1.0
    (expected,) = session(float_graph).run(["output"], {"input": want})
    (got,) = session(uint8_graph).run(["output"], {"input": images})
    np.testing.assert_array_equal(got, expected)
    # The build's check (its own probe images) agrees.
    result = check_uint8_input("conv", float_graph, uint8_graph, front)
    assert result.max_abs_diff == 0.0


def test_a_cast_only_front_keeps_the_layout_and_avoids_taken_names(tmp_path: Path) -> None:
    model = _conv_model(["N", 3, 4, 4], name_clash=True)
    converted = Uint8Input().apply(model)
    assert [n.op_type for n in converted.graph.node] == ["Cast", "Conv", "Add"]
    dims = converted.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, 4, 4]
    original, path = tmp_path / "original.onnx", tmp_path / "cast.onnx"
    onnx.save(model, str(original))
    onnx.save(converted, str(path))
    pixels = np.random.default_rng(5).integers(0, 256, (2, 3, 4, 4), dtype=np.uint8)
    (expected,) = session(original).run(["output"], {"input": pixels.astype(np.float32)})
    (got,) = session(path).run(["output"], {"input": pixels})
    np.testing.assert_array_equal(got, expected)
    assert "uint8 NHWC RGB 0..255: cast to float32" in converted.doc_string


def test_inputs_that_are_not_4d_float32_are_refused() -> None:
    flat = _conv_model(["N", 12])
    with pytest.raises(ValueError, match="not 4-D"):
        Uint8Input().apply(flat)
    already = Uint8Input().apply(_conv_model(["N", 3, 4, 4]))
    with pytest.raises(ValueError, match="not float32"):
        Uint8Input().apply(already)


def test_every_model_has_a_front_and_only_blazeface_rescales() -> None:
    assert set(build.UINT8_INPUTS) == set(build.MODELS)
    assert build.UINT8_INPUTS["blazeface"] == Uint8Input(nchw=True, divisor=127.5, offset=1.0)
    for model in ("dlib_resnet", "faceres_deep", "mobileface"):
        assert build.UINT8_INPUTS[model] == Uint8Input()
