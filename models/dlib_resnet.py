"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) to ONNX.

The network is ``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp``. The ``.dat``
file holds the layers' parameters but not the tag/skip ids, so the definition is written out
here (``network``) and the file is read against it: every layer's version tag, kernel size,
stride and padding must match, and the file must end exactly after the last layer.

Serialization order (``dlib/dnn/core.h``): the loss layer, then one version number per layer
from the top down (2: ``add_layer``, 1: tag or skip, 3: the layer over the input), the input
layer, then each computational layer's details from the bottom up, each followed by three
bools and three (empty) tensors, the bottom one by an extra integer.

ONNX graph: input ``input`` float32 [N, 150, 150, 3] RGB 0..255 (a dlib face chip); the graph
subtracts dlib's mean and divides by 256 as ``input_rgb_image_sized`` does; affine layers
(batch norm folded at training time) are folded into the preceding convolution; ``add_prev``
of differently sized tensors zero-pads the smaller one at the end of each dimension, as dlib's
``tt::add`` does; output ``embedding`` float32 [N, 128], dlib's raw descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from numpy.typing import NDArray

from models.dlib_format import DlibFormatError, DlibReader
from models.onnx_graph import BATCH, GraphBuilder

#: Chip side, pixels.
CHIP_SIZE = 150
#: Length of the descriptor.
EMBEDDING_SIZE = 128


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer of the network definition, bottom-up order."""

    kind: str
    """``con``, ``affine``, ``relu``, ``max_pool``, ``avg_pool``, ``add_prev``, ``tag``,
    ``skip`` or ``fc``."""
    size: int = 0
    """Kernel/window side (0 for avg_pool_everything), or number of outputs for ``fc``."""
    stride: int = 1
    """Stride of con and pooling layers."""
    filters: int = 0
    """Number of filters of a con layer."""
    tag: int = 0
    """Tag id of tag, skip and add_prev layers."""


@dataclass(slots=True)
class Weights:
    """Parameters read from the file for one computational layer."""

    layer: Layer
    """Its definition."""
    arrays: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    """``filters``/``biases`` (con), ``gamma``/``beta`` (affine), ``weights`` (fc)."""
    padding: int = 0
    """Padding of con and pooling layers (same on both axes)."""


def _block(filters: int, stride: int) -> list[Layer]:
    """``block<N, affine, stride>``: con, affine, relu, con, affine (bottom-up)."""
    return [
        Layer("con", size=3, stride=stride, filters=filters),
        Layer("affine"),
        Layer("relu"),
        Layer("con", size=3, stride=1, filters=filters),
        Layer("affine"),
    ]


def _ares(filters: int) -> list[Layer]:
    """``relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>``."""
    return [Layer("tag", tag=1), *_block(filters, 1), Layer("add_prev", tag=1), Layer("relu")]


def _ares_down(filters: int) -> list[Layer]:
    """``relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>``."""
    return [
        Layer("tag", tag=1),
        *_block(filters, 2),
        Layer("tag", tag=2),
        Layer("skip", tag=1),
        Layer("avg_pool", size=2, stride=2),
        Layer("add_prev", tag=2),
        Layer("relu"),
    ]


def network() -> list[Layer]:
    """``anet_type`` without its input and loss layers, bottom-up."""
    layers = [
        Layer("con", size=7, stride=2, filters=32),
        Layer("affine"),
        Layer("relu"),
        Layer("max_pool", size=3, stride=2),
    ]
    layers += _ares(32) * 3
    layers += _ares_down(64) + _ares(64) * 3
    layers += _ares_down(128) + _ares(128) * 2
    layers += _ares_down(256) + _ares(256) * 2
    layers += _ares_down(256)
    layers += [Layer("avg_pool", size=0, stride=1), Layer("fc", size=EMBEDDING_SIZE)]
    return layers


@dataclass(frozen=True, slots=True)
class DlibNetwork:
    """What the file holds: the input layer's mean and every computational layer."""

    mean_rgb: tuple[float, float, float]
    """Subtracted from each channel before dividing by 256."""
    layers: list[Weights]
    """Computational and tag/skip layers, bottom-up (tag/skip carry no arrays)."""


def _read_window(reader: DlibReader, layer: Layer, what: str) -> int:
    """Reads nr, nc, stride_y, stride_x, padding_y, padding_x; checks them; returns padding."""
    nr, nc, stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(6))
    if (nr, nc) != (layer.size, layer.size) or (stride_y, stride_x) != (layer.stride,) * 2:
        raise DlibFormatError(f"{what}: window {nr}x{nc}/{stride_y} does not match {layer}")
    if pad_y != pad_x:
        raise DlibFormatError(f"{what}: asymmetric padding {pad_y}, {pad_x}")
    return pad_y


def _read_details(reader: DlibReader, layer: Layer) -> Weights:
    """One layer's details (``serialize(details)``)."""
    weights = Weights(layer)
    if layer.kind == "con":
        reader.expect_string("con_4", "con_5")
        params = reader.tensor().reshape(-1)
        reader.expect_integer(layer.filters, "con num_filters")
        weights.padding = _read_window(reader, layer, "con")
        shape = reader.alias_tensor()
        reader.alias_tensor()
        for _ in range(4):
            reader.floating()
        count = int(np.prod(shape))
        weights.arrays["filters"] = params[:count].reshape(shape)
        weights.arrays["biases"] = params[count : count + layer.filters]
        if params.size != count + layer.filters:
            raise DlibFormatError(f"con: {params.size} parameters for filters {shape}")
    elif layer.kind == "affine":
        version = reader.expect_string("affine_", "affine_2")
        params = reader.tensor().reshape(-1)
        gamma = reader.alias_tensor()
        reader.alias_tensor()
        reader.expect_integer(0, "affine mode (CONV_MODE)")
        if version == "affine_2" and reader.boolean():
            raise DlibFormatError("disabled affine layer")
        channels = int(np.prod(gamma))
        weights.arrays["gamma"], weights.arrays["beta"] = params[:channels], params[channels:]
    elif layer.kind == "relu":
        reader.expect_string("relu_")
    elif layer.kind == "add_prev":
        reader.expect_string("add_prev_")
    elif layer.kind in ("max_pool", "avg_pool"):
        reader.expect_string(f"{layer.kind}_2")
        weights.padding = _read_window(reader, layer, layer.kind)
    elif layer.kind == "fc":
        version = reader.expect_string("fc_2", "fc_3")
        reader.expect_integer(layer.size, "fc num_outputs")
        inputs = reader.integer()
        params = reader.tensor().reshape(-1)
        shape = reader.alias_tensor()
        reader.alias_tensor()
        reader.expect_integer(1, "fc bias mode (FC_NO_BIAS)")
        for _ in range(4):
            reader.floating()
        if version == "fc_3":
            reader.boolean()
        if shape[:2] != (inputs, layer.size) or params.size != inputs * layer.size:
            raise DlibFormatError(f"fc: weights {shape} for {inputs} inputs")
        weights.arrays["weights"] = params.reshape(inputs, layer.size)
    else:
        raise DlibFormatError(f"no details for {layer.kind}")
    return weights


def _read_layer_state(reader: DlibReader, bottom: bool) -> None:
    """The bookkeeping after a layer's details: 3 bools, 3 tensors (and an int at the bottom)."""
    for _ in range(3):
        reader.boolean()
    for _ in range(3):
        reader.tensor()
    if bottom:
        reader.integer()


def read_dat(data: bytes) -> DlibNetwork:
    """Parses the whole ``.dat`` file against ``network()``."""
    reader = DlibReader(data)
    layers = network()
    reader.expect_integer(1, "add_loss_layer version")
    reader.expect_string("loss_metric_2")
    reader.floating()
    reader.floating()
    for depth, layer in enumerate(reversed(layers)):
        bottom = depth == len(layers) - 1
        version = 1 if layer.kind in ("tag", "skip") else 3 if bottom else 2
        reader.expect_integer(version, f"version of {layer.kind} layer")
    reader.expect_string("input_rgb_image_sized")
    mean = (reader.floating(), reader.floating(), reader.floating())
    reader.expect_integer(CHIP_SIZE, "input rows")
    reader.expect_integer(CHIP_SIZE, "input columns")
    parsed = []
    for index, layer in enumerate(layers):
        if layer.kind in ("tag", "skip"):
            parsed.append(Weights(layer))
            continue
        parsed.append(_read_details(reader, layer))
        _read_layer_state(reader, bottom=index == 0)
    if reader.remaining:
        raise DlibFormatError(f"{reader.remaining} unread bytes at {reader.position}")
    return DlibNetwork(mean_rgb=mean, layers=parsed)


def _pad_to(graph: GraphBuilder, name: str, shape: tuple[int, ...], target: tuple[int, ...]) -> str:
    """Zero-pads a [N, C, H, W] tensor at the end of C, H and W up to ``target``."""
    if shape == target:
        return name
    pads = np.array([0, 0, 0, 0, 0, *(t - s for s, t in zip(shape, target, strict=True))])
    return graph.node("Pad", [name, graph.constant(pads.astype(np.int64), "pads")])


def to_onnx(net: DlibNetwork) -> onnx.ModelProto:
    """The ONNX model of the parsed network (see the module docstring)."""
    graph = GraphBuilder("dlib_face_recognition_resnet_model_v1")
    mean = np.array(net.mean_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
    x = graph.node("Transpose", ["input"], perm=[0, 3, 1, 2])
    x = graph.node("Sub", [x, graph.constant(mean, "mean")])
    x = graph.node("Mul", [x, graph.constant(np.array(1 / 256, dtype=np.float32), "scale")])
    shape: tuple[int, ...] = (3, CHIP_SIZE, CHIP_SIZE)  # C, H, W of x
    tags: dict[int, tuple[str, tuple[int, ...]]] = {}
    layers = net.layers
    i = 0
    while i < len(layers):
        w, layer = layers[i], layers[i].layer
        if layer.kind == "con":
            filters, biases = w.arrays["filters"], w.arrays["biases"]
            following = layers[i + 1]
            if following.layer.kind == "affine":  # fold y = gamma * conv(x) + beta
                gamma, beta = following.arrays["gamma"], following.arrays["beta"]
                filters = filters * gamma.reshape(-1, 1, 1, 1)
                biases = biases * gamma + beta
                i += 1
            x = graph.node(
                "Conv",
                [x, graph.constant(filters, "filters"), graph.constant(biases, "biases")],
                kernel_shape=[layer.size] * 2,
                strides=[layer.stride] * 2,
                pads=[w.padding] * 4,
            )
            side = [1 + (s + 2 * w.padding - layer.size) // layer.stride for s in shape[1:]]
            shape = (layer.filters, *side)
        elif layer.kind == "affine":
            gamma = w.arrays["gamma"].reshape(1, -1, 1, 1)
            beta = w.arrays["beta"].reshape(1, -1, 1, 1)
            x = graph.node("Mul", [x, graph.constant(gamma, "gamma")])
            x = graph.node("Add", [x, graph.constant(beta, "beta")])
        elif layer.kind == "relu":
            x = graph.node("Relu", [x])
        elif layer.kind in ("max_pool", "avg_pool") and layer.size:
            op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
            x = graph.node(
                op,
                [x],
                kernel_shape=[layer.size] * 2,
                strides=[layer.stride] * 2,
                pads=[w.padding] * 4,
            )
            side = [1 + (s + 2 * w.padding - layer.size) // layer.stride for s in shape[1:]]
            shape = (shape[0], *side)
        elif layer.kind == "avg_pool":  # avg_pool_everything
            x = graph.node("Flatten", [graph.node("GlobalAveragePool", [x])])
            shape = (shape[0],)
        elif layer.kind == "tag":
            tags[layer.tag] = (x, shape)
        elif layer.kind == "skip":
            x, shape = tags[layer.tag]
        elif layer.kind == "add_prev":
            other, other_shape = tags[layer.tag]
            target = tuple(max(a, b) for a, b in zip(shape, other_shape, strict=True))
            x = graph.node(
                "Add",
                [_pad_to(graph, x, shape, target), _pad_to(graph, other, other_shape, target)],
            )
            shape = target
        elif layer.kind == "fc":
            weights = w.arrays["weights"]
            x = graph.node("MatMul", [x, graph.constant(weights, "fc")], output="embedding")
            shape = (weights.shape[1],)
        i += 1
    return graph.model(
        inputs=[("input", [BATCH, CHIP_SIZE, CHIP_SIZE, 3])],
        outputs=[("embedding", [BATCH, EMBEDDING_SIZE])],
        doc="dlib_face_recognition_resnet_model_v1 (dlib, CC0), converted by facegrid models/"
        "dlib_resnet.py: float32 [N,150,150,3] RGB 0..255 chips -> raw 128-d descriptors",
    )
