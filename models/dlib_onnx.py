"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) -> ONNX.

Numpy + onnx only. The .dat is dlib's own serialisation (dlib/serialize.h, dlib/dnn/*.h):

* integers: one control byte (low nibble = byte count, 0x80 = negative), then little-endian bytes;
* floats: a mantissa/exponent integer pair (value = mantissa * 2**exponent);
* strings: an integer length, then the bytes; bools: one ASCII byte ``'0'``/``'1'``;
* tensors: version (2), four dimensions (num_samples, k, nr, nc), raw little-endian float32;
  alias tensors (views into a layer's params): version (1) and four dimensions.

The file holds the loss layer, then one version number per nested layer (2 for a computational
layer, 1 for tag/skip layers, 3 for the innermost layer that owns the input layer), then the input
layer, then every computational layer from the input upwards, each followed by three flags and
three (empty) bookkeeping tensors. Tag/skip ids are not in the file: the residual wiring follows
dlib's ``dnn_face_recognition_ex.cpp``, where every residual block is
``con, affine, relu, con, affine, [avg_pool], add_prev, relu`` (the avg_pool variant is the
downsampling block: its shortcut is the 2x2/2 average pool of the block input). dlib's add_prev
sums tensors of different shapes by zero-padding each to the larger one (extra channels, and
extra rows/columns at the bottom/right).

Usage: ``python -m models.dlib_onnx IN.dat OUT.onnx``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT = "input"
OUTPUT = "embedding"
CHIP = 150
OPSET = 13
LAYER_NAMES = {
    name.encode()
    for name in ("con_4", "affine_", "relu_", "add_prev_", "max_pool_2", "avg_pool_2", "fc_2")
}


class FormatError(ValueError):
    """The file does not look like the network this converter knows."""


@dataclass
class Layer:
    """One computational layer as read from the file."""

    kind: str
    ints: list[int] = field(default_factory=list)
    floats: list[float] = field(default_factory=list)
    params: np.ndarray | None = None
    aliases: list[tuple[int, int, int, int]] = field(default_factory=list)
    trailer: list[int] = field(default_factory=list)


class Reader:
    """Sequential reader of dlib's serialisation primitives."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def integer(self) -> int:
        control = self.data[self.pos]
        size = control & 0x0F
        if size > 8:
            raise FormatError(f"bad integer control byte {control:#x} at {self.pos}")
        start = self.pos + 1
        value = int.from_bytes(self.data[start : start + size], "little")
        self.pos = start + size
        return -value if control & 0x80 else value

    def peek_integer(self) -> int:
        start = self.pos
        try:
            return self.integer()
        finally:
            self.pos = start

    def at_layer_name(self) -> bool:
        """True when a layer's version string starts here."""
        start = self.pos
        try:
            length = self.integer()
            if not 0 < length < 32:
                return False
            text = self.data[self.pos : self.pos + length]
            return text in LAYER_NAMES
        finally:
            self.pos = start

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(np.ldexp(np.float64(mantissa), exponent))

    def string(self) -> str:
        length = self.integer()
        text = self.data[self.pos : self.pos + length]
        self.pos += length
        return text.decode("ascii")

    def flag(self) -> bool:
        byte = self.data[self.pos : self.pos + 1]
        if byte not in (b"0", b"1"):
            raise FormatError(f"bad bool {byte!r} at {self.pos}")
        self.pos += 1
        return byte == b"1"

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise FormatError(f"tensor version {version} at {self.pos}")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos)
        self.pos += 4 * count
        return values.astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.integer()
        if version != 1:
            raise FormatError(f"alias tensor version {version} at {self.pos}")
        n, k, nr, nc = (self.integer() for _ in range(4))
        return n, k, nr, nc


@dataclass
class Network:
    """The input layer's parameters and the computational layers, input first."""

    mean: tuple[float, float, float]
    size: tuple[int, int]
    layers: list[Layer]


def _read_layer(reader: Reader) -> Layer:
    name = reader.string()
    if name == "con_4":
        layer = Layer("con", params=reader.tensor())
        layer.ints = [reader.integer() for _ in range(7)]  # filters, nr, nc, sy, sx, py, px
        layer.aliases = [reader.alias(), reader.alias()]
        layer.floats = [reader.real() for _ in range(4)]
    elif name == "affine_":
        layer = Layer("affine", params=reader.tensor())
        layer.aliases = [reader.alias(), reader.alias()]
        layer.ints = [reader.integer()]  # mode: 0 = per channel
    elif name in ("max_pool_2", "avg_pool_2"):
        layer = Layer(name[:-2])
        layer.ints = [reader.integer() for _ in range(6)]  # nr, nc, sy, sx, py, px
    elif name == "fc_2":
        layer = Layer("fc")
        layer.ints = [reader.integer(), reader.integer()]  # outputs, inputs
        layer.params = reader.tensor()
        layer.aliases = [reader.alias(), reader.alias()]
        layer.ints.append(reader.integer())  # bias mode: 1 = no bias
        layer.floats = [reader.real() for _ in range(4)]
    elif name in ("relu_", "add_prev_"):
        layer = Layer(name[:-1])
    else:
        raise FormatError(f"unknown layer {name!r}")
    for _ in range(3):
        reader.flag()
    # Bookkeeping tensors (empty in a trained file): three after most layers, two and an
    # integer after the innermost one (the layer that owns the input layer).
    while reader.pos < len(reader.data) and not reader.at_layer_name():
        if reader.peek_integer() == 2:
            reader.tensor()
        else:
            layer.trailer.append(reader.integer())
    return layer


def parse(data: bytes) -> Network:
    """Reads the .dat file's network."""
    reader = Reader(data)
    if reader.integer() != 1 or reader.string() != "loss_metric_2":
        raise FormatError("not a loss_metric network")
    reader.real()  # margin
    reader.real()  # distance threshold
    while True:
        version = reader.integer()
        if version == 3:
            break
        if version not in (1, 2):
            raise FormatError(f"unexpected layer version {version} at {reader.pos}")
    if reader.string() != "input_rgb_image_sized":
        raise FormatError("input layer is not input_rgb_image_sized")
    mean = (reader.real(), reader.real(), reader.real())
    size = (reader.integer(), reader.integer())
    layers = []
    while reader.pos < len(data):
        layers.append(_read_layer(reader))
    return Network(mean, size, layers)


class _Graph:
    """Accumulates ONNX nodes and initializers while tracking static NCHW shapes."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


Shape = tuple[int, int, int]  # channels, rows, cols


def _pad_to(graph: _Graph, value: str, shape: Shape, target: Shape) -> str:
    """Zero-pads channels and bottom/right cells up to ``target`` (dlib's add of unequal sizes)."""
    extra = [t - s for s, t in zip(shape, target, strict=True)]
    if not any(extra):
        return value
    pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
    return graph.node("Pad", [value, graph.const("pads", pads)])


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - kernel) // stride


def to_onnx(network: Network) -> onnx.ModelProto:
    """The ONNX graph: ``input`` float32 [N,H,W,3] RGB 0..255 -> ``embedding`` float32 [N,128]."""
    graph = _Graph()
    rows, cols = network.size
    x = graph.node("Transpose", [INPUT], perm=[0, 3, 1, 2])
    mean = np.array(network.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    x = graph.node("Sub", [x, graph.const("mean", mean)])
    x = graph.node("Mul", [x, graph.const("scale", np.array(1.0 / 256.0, dtype=np.float32))])
    shape: Shape = (3, rows, cols)
    block_input: tuple[str, Shape] | None = None
    shortcut: tuple[str, Shape] | None = None
    convs_in_block = 0
    embedding = ""
    for index, layer in enumerate(network.layers):
        if layer.kind == "con":
            filters, nr, nc, sy, sx, py, px = layer.ints
            if index > 0:  # every con after the stem's is one of a residual block's two
                if convs_in_block == 0:
                    block_input, shortcut = (x, shape), None
                convs_in_block = (convs_in_block + 1) % 2
            assert layer.params is not None
            flat = layer.params.reshape(-1)
            weights = flat[: filters * shape[0] * nr * nc].reshape(filters, shape[0], nr, nc)
            bias = flat[weights.size : weights.size + filters]
            if flat.size != weights.size + filters:
                raise FormatError(f"con layer {index}: {flat.size} params")
            x = graph.node(
                "Conv",
                [x, graph.const("w", weights), graph.const("b", bias)],
                kernel_shape=[nr, nc],
                strides=[sy, sx],
                pads=[py, px, py, px],
            )
            shape = (
                filters,
                _conv_out(shape[1], nr, sy, py),
                _conv_out(shape[2], nc, sx, px),
            )
        elif layer.kind == "affine":
            assert layer.params is not None
            if layer.ints != [0]:
                raise FormatError(f"affine layer {index}: mode {layer.ints}")
            flat = layer.params.reshape(-1)
            channels = shape[0]
            gamma = flat[:channels].reshape(1, channels, 1, 1)
            beta = flat[channels : 2 * channels].reshape(1, channels, 1, 1)
            x = graph.node("Mul", [x, graph.const("gamma", gamma)])
            x = graph.node("Add", [x, graph.const("beta", beta)])
        elif layer.kind == "relu":
            x = graph.node("Relu", [x])
        elif layer.kind in ("max_pool", "avg_pool"):
            nr, nc, sy, sx, py, px = layer.ints
            if nr == 0 and nc == 0:  # avg_pool_everything
                x = graph.node("GlobalAveragePool", [x])
                shape = (shape[0], 1, 1)
                continue
            if py or px:
                raise FormatError(f"pool layer {index}: padding not supported")
            op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
            if layer.kind == "avg_pool":
                # The downsampling block's shortcut: average pool of the block input.
                if block_input is None:
                    raise FormatError(f"avg_pool layer {index} outside a residual block")
                source, source_shape = block_input
                pooled = graph.node(op, [source], kernel_shape=[nr, nc], strides=[sy, sx])
                shortcut = (
                    pooled,
                    (
                        source_shape[0],
                        _conv_out(source_shape[1], nr, sy, 0),
                        _conv_out(source_shape[2], nc, sx, 0),
                    ),
                )
                continue
            x = graph.node(op, [x], kernel_shape=[nr, nc], strides=[sy, sx])
            shape = (
                shape[0],
                _conv_out(shape[1], nr, sy, 0),
                _conv_out(shape[2], nc, sx, 0),
            )
        elif layer.kind == "add_prev":
            if block_input is None:
                raise FormatError(f"add_prev layer {index} outside a residual block")
            other, other_shape = shortcut if shortcut is not None else block_input
            target: Shape = (
                max(shape[0], other_shape[0]),
                max(shape[1], other_shape[1]),
                max(shape[2], other_shape[2]),
            )
            x = graph.node(
                "Add",
                [_pad_to(graph, x, shape, target), _pad_to(graph, other, other_shape, target)],
            )
            shape = target
            block_input, shortcut = None, None
        elif layer.kind == "fc":
            outputs, inputs, bias_mode = layer.ints
            assert layer.params is not None
            if bias_mode != 1 or layer.params.size != inputs * outputs:
                raise FormatError("fc layer with bias is not supported")
            weights = layer.params.reshape(inputs, outputs)
            x = graph.node("Flatten", [x], axis=1)
            embedding = graph.node("MatMul", [x, graph.const("fc", weights)])
        else:
            raise FormatError(f"layer {index}: {layer.kind}")
    if not embedding:
        raise FormatError("no fc layer")
    graph.nodes.append(helper.make_node("Identity", [embedding], [OUTPUT], name="output"))
    onnx_graph = helper.make_graph(
        graph.nodes,
        "dlib_resnet",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", rows, cols, 3])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 128])],
        graph.inits,
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="facegrid.models.dlib_onnx",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def convert(dat: Path, target: Path) -> None:
    """Writes the ONNX conversion of ``dat`` to ``target``."""
    model = to_onnx(parse(dat.read_bytes()))
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m models.dlib_onnx IN.dat OUT.onnx", file=sys.stderr)
        return 2
    convert(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
