"""The embedder and exact search on a GPU in PyTorch (issue 13's GPU goal), as one short script
for a machine that has PyTorch but neither the ``onnx`` package, Triton nor FAISS.

    python -m bench.gpu_embedder export build/gpu-embedder          # here: graph, weights, inputs
    python bench/gpu_embedder.py run build/gpu-embedder [--device cuda] [--seconds 5]

``export`` (this machine, with onnx and onnxruntime) writes the dlib ResNet graph of
``triton_models/dlib_resnet/1/model.onnx`` as JSON (nodes, attributes) plus its weights
(``weights.npz``), and 128 real 150x150 uint8 inputs (centre crops of ../shared/faces photos)
with onnxruntime's CPU embeddings of them (``reference.npz``).

``run`` (the GPU machine; needs only torch and numpy) rebuilds the graph as a PyTorch module (a
small interpreter of the ops the graph uses), then prints: the graph's FLOPs per face (counted
from the convolution and matrix shapes), the bf16 matrix-product peak measured on that device
(8192^3 products), faces/s at batch 1/32/128 in float32, fp16 and bf16 (channels_last; CUDA
graphs where the device is CUDA), the share of the bf16 peak at batch 128, the embeddings'
cosine against onnxruntime's on CPU (the goal: >= 0.999), and exact search (a batch of 128
queries against 1M random 128-d unit vectors in fp16 with top-1) in queries/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MODEL = Path("triton_models/dlib_resnet/1/model.onnx")
BATCHES = (1, 32, 128)


def export(out: Path, faces: Path, count: int = 128) -> None:
    """Writes graph.json, weights.npz and reference.npz into ``out`` (needs onnx, Pillow)."""
    import onnx
    import onnxruntime as ort  # type: ignore[import-untyped]
    from onnx import numpy_helper
    from PIL import Image

    model = onnx.load(str(MODEL))
    nodes = [
        {
            "op": node.op_type,
            "inputs": list(node.input),
            "outputs": list(node.output),
            "attrs": {a.name: _plain(onnx.helper.get_attribute_value(a)) for a in node.attribute},
        }
        for node in model.graph.node
    ]
    graph: dict[str, Any] = {
        "inputs": [i.name for i in model.graph.input],
        "outputs": [o.name for o in model.graph.output],
        "nodes": nodes,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "graph.json").write_text(json.dumps(graph))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.savez(out / "weights.npz", **weights)
    photos = sorted(p for p in faces.rglob("*.jp*g") if "groups" not in p.parts)
    chips = []
    for path in (photos * (count // max(1, len(photos)) + 1))[:count]:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            side = min(rgb.size)
            left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
            chips.append(
                np.asarray(rgb.crop((left, top, left + side, top + side)).resize((150, 150)))
            )
    batch = np.stack(chips).astype(np.uint8)
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    (embeddings,) = session.run(None, {graph["inputs"][0]: batch})
    np.savez(out / "reference.npz", chips=batch, embeddings=embeddings)
    print(f"wrote {out}: {len(nodes)} nodes, {len(weights)} weights, {len(batch)} inputs")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def build(folder: Path, torch: Any) -> tuple[Callable[[Any], Any], Callable[[Any], float]]:
    """(forward, flops) for the exported graph: ``forward(uint8 NHWC batch)`` runs it in the
    parameters' dtype; ``flops(batch)`` counts 2 x multiply-adds of its convolutions and
    matrix products for that batch."""
    functional = torch.nn.functional
    graph = json.loads((folder / "graph.json").read_text())
    stored = np.load(folder / "weights.npz")
    weights = {name: torch.from_numpy(np.array(stored[name])) for name in stored.files}
    macs: list[float] = []

    def conv(x: Any, a: dict[str, Any], w: Any, b: Any = None) -> Any:
        top, left, bottom, right = a.get("pads", [0, 0, 0, 0])
        if (top, left) != (bottom, right):
            x = functional.pad(x, (left, right, top, bottom))
            top = left = 0
        y = functional.conv2d(
            x, w, b, tuple(a.get("strides", [1, 1])), (top, left),
            tuple(a.get("dilations", [1, 1])), a.get("group", 1),
        )  # fmt: skip
        macs.append(y.numel() * w.shape[1] * w.shape[2] * w.shape[3])
        return y

    def matmul(x: Any, w: Any) -> Any:
        macs.append(x.shape[0] * x.shape[1] * w.shape[1])
        return x @ w

    def layout(x: Any) -> Any:
        if x.dim() == 4 and channels_last[0]:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def pad(x: Any, pads: Any, a: dict[str, Any]) -> Any:
        p = [int(v) for v in pads.tolist()]
        half = len(p) // 2
        pairs = [v for d in reversed(range(half)) for v in (p[d], p[d + half])]
        return functional.pad(x, pairs)

    ops: dict[str, Callable[..., Any]] = {
        "Cast": lambda a, x: x.to(dtype[0]),
        "Transpose": lambda a, x: layout(x.permute(*a["perm"])),
        "Sub": lambda a, x, y: x - y,
        "Mul": lambda a, x, y: x * y,
        "Add": lambda a, x, y: x + y,
        "Relu": lambda a, x: functional.relu(x),
        "Conv": lambda a, x, w, b=None: conv(x, a, w, b),
        "MaxPool": lambda a, x: functional.max_pool2d(
            x, a["kernel_shape"], a.get("strides"), ceil_mode=bool(a.get("ceil_mode", 0))
        ),
        "AveragePool": lambda a, x: functional.avg_pool2d(
            x, a["kernel_shape"], a.get("strides"), ceil_mode=bool(a.get("ceil_mode", 0))
        ),
        "Pad": lambda a, x, pads, value=None: pad(x, pads, a),
        "GlobalAveragePool": lambda a, x: x.mean((2, 3), keepdim=True),
        "Flatten": lambda a, x: x.flatten(a.get("axis", 1)),
        "MatMul": lambda a, x, w: matmul(x, w),
    }
    dtype = [torch.float32]
    device = [torch.device("cpu")]
    placed: dict[str, Any] = {}

    def forward(batch: Any) -> Any:
        if batch.dtype == torch.uint8 and (dtype[0], device[0]) != placed.get("_key"):
            placed.clear()
            for name, w in weights.items():
                keep = not torch.is_floating_point(w)
                placed[name] = w.to(device[0]) if keep else layout(w.to(device[0], dtype[0]))
            placed["_key"] = (dtype[0], device[0])
        values = dict(placed)
        values[graph["inputs"][0]] = batch
        for node in graph["nodes"]:
            args = [values[name] for name in node["inputs"] if name]
            values[node["outputs"][0]] = ops[node["op"]](node["attrs"], *args)
        return values[graph["outputs"][0]]

    channels_last = [False]

    def configure(new_dtype: Any, new_device: Any, use_channels_last: bool) -> None:
        dtype[0], device[0], channels_last[0] = new_dtype, new_device, use_channels_last

    def flops(batch: int) -> float:
        macs.clear()
        with torch.no_grad():
            forward(torch.zeros((batch, 150, 150, 3), dtype=torch.uint8, device=device[0]))
        return 2.0 * sum(macs)

    forward.configure = configure  # type: ignore[attr-defined]
    return forward, flops


def _timed(torch: Any, device: Any, step: Callable[[], Any], seconds: float) -> float:
    """Calls per second of ``step`` over about ``seconds`` (after a warm-up)."""
    for _ in range(3):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        calls += 1
    sync()
    return calls / (time.perf_counter() - started)


def peak_bf16(torch: Any, device: Any, seconds: float) -> float:
    """FLOP/s of 8192^3 bf16 matrix products on ``device`` (2048^3 on a CPU)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn((n, n), device=device, dtype=torch.bfloat16)
    b = torch.randn((n, n), device=device, dtype=torch.bfloat16)
    rate = _timed(torch, device, lambda: a @ b, seconds)
    return rate * 2.0 * n**3


def run(folder: Path, device_name: str, seconds: float) -> None:
    import torch  # type: ignore[import-not-found]  # on the GPU machine only

    device = torch.device(device_name)
    forward, flops = build(folder, torch)
    reference = np.load(folder / "reference.npz")
    chips = torch.from_numpy(reference["chips"]).to(device)
    expected = reference["embeddings"].astype(np.float64)
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}")
    forward.configure(torch.float32, device, False)  # type: ignore[attr-defined]
    per_face = flops(1)
    print(f"graph: {per_face / 1e9:.3f} GFLOP per face (2 x multiply-adds)")
    peak = peak_bf16(torch, device, seconds)
    print(f"bf16 matrix-product peak measured: {peak / 1e12:.1f} TFLOP/s")
    for name, dtype in (
        ("float32", torch.float32),
        ("fp16", torch.float16),
        ("bf16", torch.bfloat16),
    ):
        if device.type == "cpu" and dtype == torch.float16:
            continue
        forward.configure(dtype, device, True)  # type: ignore[attr-defined]
        with torch.no_grad():
            got = forward(chips).double().cpu().numpy()
        cosine = np.sum(got * expected, 1) / (
            np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
        )
        line = f"{name}: cosine to onnxruntime CPU min {cosine.min():.5f} mean {cosine.mean():.5f}"
        for batch in BATCHES:
            inputs = (
                chips[:batch]
                if batch <= len(chips)
                else chips.repeat(batch // len(chips) + 1, 1, 1, 1)[:batch]
            )
            step = _step(torch, device, forward, inputs)
            faces_s = _timed(torch, device, step, seconds) * batch
            line += f"; batch {batch}: {faces_s:,.0f} faces/s"
            if batch == max(BATCHES) and name == "bf16":
                line += f" ({faces_s * per_face / peak:.1%} of the bf16 peak)"
        print(line, flush=True)
    search(torch, device, seconds)


def _step(torch: Any, device: Any, forward: Callable[[Any], Any], inputs: Any) -> Callable[[], Any]:
    """One inference of ``inputs``; replayed from a CUDA graph where the device is CUDA."""
    if device.type != "cuda":

        def plain() -> Any:
            with torch.no_grad():
                return forward(inputs)

        return plain
    static = inputs.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):
            forward(static)
    torch.cuda.current_stream().wait_stream(stream)
    captured = torch.cuda.CUDAGraph()
    with torch.cuda.graph(captured), torch.no_grad():
        forward(static)
    return captured.replay


def search(torch: Any, device: Any, seconds: float, size: int = 1_000_000) -> None:
    """Exact top-1 of 128 queries against ``size`` unit vectors, fp16 (float32 on a CPU)."""
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    size = size if device.type == "cuda" else 100_000
    generator = torch.Generator(device=device).manual_seed(0)
    base = torch.randn((size, 128), device=device, generator=generator)
    base = (base / base.norm(dim=1, keepdim=True)).to(dtype)
    queries = base[:128].clone()

    def top1() -> Any:
        return (queries @ base.T).max(dim=1)

    found = top1().indices.cpu().numpy()
    assert (found == np.arange(128)).all(), "exact search missed a query's own vector"
    rate = _timed(torch, device, top1, seconds) * 128
    print(
        f"exact search, {size:,} x 128 {str(dtype).removeprefix('torch.')}: {rate:,.0f} queries/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    out = sub.add_parser("export")
    out.add_argument("folder", type=Path)
    out.add_argument("--faces", type=Path, default=Path("../shared/faces"))
    go = sub.add_parser("run")
    go.add_argument("folder", type=Path)
    go.add_argument("--device", default="cuda")
    go.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.command == "export":
        export(args.folder, args.faces)
    else:
        run(args.folder, args.device, args.seconds)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
