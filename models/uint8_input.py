"""A uint8 input in front of a converted float32 graph: the preprocessing moves into the graph.

embed_svc used to compute each network's float32 input in numpy from uint8 RGB pixels and send
that (4 bytes per value) to the backend. ``Uint8Input.apply`` gives a graph a uint8 NHWC input
``input`` followed by exactly those numpy steps as ONNX operators, in the same order and in
float32: ``Cast`` to float32, optionally ``Transpose`` to NCHW, ``Div`` by a constant,
``Sub`` of a constant. Each step is exact or correctly rounded in IEEE float32 both in numpy and
in onnxruntime, so the network sees bit-identical inputs (``models.verify.check_uint8_input``
checks the outputs for equality). A Mul by the reciprocal instead of the Div would not be:
1/127.5 is not representable in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

#: NHWC -> NCHW.
_TO_NCHW = (0, 3, 1, 2)


@dataclass(frozen=True, slots=True)
class Uint8Input:
    """What a graph computes from its uint8 NHWC input before the converted network:
    ``float32(x)``, transposed to NCHW when ``nchw``, ``/ divisor``, ``- offset``."""

    nchw: bool = False
    """The converted network takes NCHW (the uint8 input is NHWC either way)."""
    divisor: float | None = None
    """Divided by after the cast (float32), or nothing."""
    offset: float | None = None
    """Subtracted last (float32), or nothing."""

    def reference(self, batch: NDArray[np.uint8]) -> NDArray[np.float32]:
        """The same computation in numpy: what embed_svc sent before (float32)."""
        out = batch.astype(np.float32)
        if self.nchw:
            out = out.transpose(_TO_NCHW)
        if self.divisor is not None:
            out = out / np.float32(self.divisor)
        if self.offset is not None:
            out = out - np.float32(self.offset)
        return np.ascontiguousarray(out)

    def describe(self) -> str:
        """The steps in words (for the model's doc string)."""
        steps = ["cast to float32"]
        if self.nchw:
            steps.append("transposed to NCHW")
        if self.divisor is not None:
            steps.append(f"divided by {self.divisor:g}")
        if self.offset is not None:
            steps.append(f"minus {self.offset:g}")
        return ", ".join(steps)

    def apply(self, model: onnx.ModelProto, name: str = "input") -> onnx.ModelProto:
        """A copy of ``model`` whose float32 input ``name`` (4-D) is computed in the graph from
        a uint8 NHWC input of the same name."""
        result = onnx.ModelProto()
        result.CopyFrom(model)
        graph = result.graph
        old = next((value for value in graph.input if value.name == name), None)
        if old is None:
            raise ValueError(f"the graph has no input {name!r}")
        if old.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise ValueError(f"input {name!r} is not float32")
        dims = list(old.type.tensor_type.shape.dim)
        if len(dims) != 4:
            raise ValueError(f"input {name!r} is not 4-D")
        if any(value.name == name for value in graph.output):
            raise ValueError(f"input {name!r} is also an output")
        taken = {v for node in graph.node for v in (*node.input, *node.output)}
        taken |= {init.name for init in graph.initializer}

        def fresh(stem: str) -> str:
            candidate = f"{name}_{stem}"
            while candidate in taken:
                candidate += "_"
            taken.add(candidate)
            return candidate

        nodes = []
        current = fresh("float32")
        nodes.append(helper.make_node("Cast", [name], [current], to=TensorProto.FLOAT))
        steps: list[tuple[str, dict[str, Any], float | None]] = []
        if self.nchw:
            steps.append(("Transpose", {"perm": list(_TO_NCHW)}, None))
        if self.divisor is not None:
            steps.append(("Div", {}, self.divisor))
        if self.offset is not None:
            steps.append(("Sub", {}, self.offset))
        for op_type, attributes, constant in steps:
            operands = [current]
            if constant is not None:
                value = fresh(f"{op_type.lower()}_constant")
                graph.initializer.append(
                    numpy_helper.from_array(np.array(constant, dtype=np.float32), value)
                )
                operands.append(value)
            output = fresh(op_type.lower())
            nodes.append(helper.make_node(op_type, operands, [output], **attributes))
            current = output
        for node in graph.node:
            node.input[:] = [current if value == name else value for value in node.input]
        nhwc = [dims[i] for i in (0, 2, 3, 1)] if self.nchw else dims
        shape = [d.dim_param or d.dim_value for d in nhwc]
        new = helper.make_tensor_value_info(name, TensorProto.UINT8, shape)
        inputs = [new if value.name == name else _copy(value) for value in graph.input]
        del graph.input[:]
        graph.input.extend(inputs)
        existing = [_copy(node) for node in graph.node]
        del graph.node[:]
        graph.node.extend([*nodes, *existing])
        result.doc_string = (
            f"{model.doc_string.rstrip('. ')}. " if model.doc_string else ""
        ) + f"Takes {name!r} as uint8 NHWC RGB 0..255: {self.describe()} in front of that graph."
        onnx.checker.check_model(result, full_check=True)
        return result


_Message = TypeVar("_Message", onnx.NodeProto, onnx.ValueInfoProto)


def _copy(message: _Message) -> _Message:
    """A detached copy of a repeated field's element."""
    copied = type(message)()
    copied.CopyFrom(message)
    return copied
