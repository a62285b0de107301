"""The in-process onnxruntime runner on a tiny graph written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from embed_svc.backends.onnx import OnnxRunner


def _doubling_model(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Add", ["input", "input"], ["output"])],
        "double",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_pool_threads_do_not_spin_and_results_are_unchanged(tmp_path: Path) -> None:
    runner = OnnxRunner(_doubling_model(tmp_path / "model.onnx"), threads=2)
    options = runner._session.get_session_options()
    assert options.intra_op_num_threads == 2
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        assert options.get_session_config_entry(key) == "0"
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    (out,) = runner.run(["output"], {"input": x})
    np.testing.assert_array_equal(out, 2 * x)
