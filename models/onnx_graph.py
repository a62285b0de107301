"""A small ONNX graph builder shared by the project's own converters (dlib, TFJS).

Produces models for opset 17 with IR version 8, which every onnxruntime since 1.12 and the
onnxruntime/TensorRT backends of the NGC Triton images load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

#: ONNX operator set of the generated models.
OPSET = 17
#: ONNX IR version of the generated models (the lowest that allows opset 17).
IR_VERSION = 8
#: Name of the dynamic batch dimension.
BATCH = "N"


class GraphBuilder:
    """Accumulates nodes and initializers; names are generated and unique."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._nodes: list[onnx.NodeProto] = []
        self._initializers: list[onnx.TensorProto] = []
        self._counter = 0

    def _fresh(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}_{self._counter}"

    def constant(self, value: NDArray[np.generic], stem: str = "const") -> str:
        """Adds an initializer holding ``value``; returns its name."""
        name = self._fresh(stem)
        self._initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(
        self,
        op_type: str,
        inputs: Sequence[str],
        output: str | None = None,
        **attributes: Any,
    ) -> str:
        """Adds one node with a single output; returns the output's name."""
        out = output or self._fresh(op_type.lower())
        self._nodes.append(helper.make_node(op_type, list(inputs), [out], **attributes))
        return out

    def model(
        self,
        inputs: Sequence[tuple[str, Sequence[int | str]]],
        outputs: Sequence[tuple[str, Sequence[int | str]]],
        doc: str,
    ) -> onnx.ModelProto:
        """The checked float32 model with these graph inputs and outputs (name, shape)."""
        graph = helper.make_graph(
            self._nodes,
            self.name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in outputs],
            initializer=self._initializers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="facegrid-models",
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model, full_check=True)
        return model
