"""uint8 against float32 network inputs through Triton: the latency of ``TritonBackend.infer``
for BlazeFace and dlib's ResNet at batch 2 (embed_svc's calls for a one-face photo: two detector
passes; a chip and its mirror image).

    python -m bench.input_dtype [--faces DIR] [--rounds 6] [--calls 40]

Two tritonservers (python backend, configs as committed, only these two models) run side by
side: one on the repository as built (uint8 inputs), one on the float32 graphs ``make models``
leaves in ``build/models/`` (the same networks without the uint8 front, configs with
``TYPE_FP32`` inputs: what embed_svc used before). Inputs are a real photo's letterboxed canvas
(both passes) and two face crops; the float32 inputs are numpy's preprocessing of them
(``build.UINT8_INPUTS``), and both servers must return identical outputs. Rounds alternate which
server goes first; each round times ``--calls`` calls per model and server, one in flight.
Prints the median call of each (median over rounds), the ratio uint8/float32, the bytes sent,
Triton's own per-request queue/input/infer/output times, and numpy's preprocessing time that
the client no longer spends.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc

from bench.data import faces_dir
from bench.throughput import LIMITS, one_face_photos, tritonserver
from embed_svc import align, detector
from embed_svc.backends.triton import TritonBackend
from embed_svc.images import decode_image
from embed_svc.types import Box, InputArray
from models import build

MODELS = {
    "blazeface": ["regressors", "classificators"],
    "dlib_resnet": ["embedding"],
}
_INPUT = re.compile(r'input \[ \{ name: "input" data_type: TYPE_UINT8 dims: \[ ([0-9, ]+) \] \} \]')


def float_config(uint8_config: str, model: str) -> str:
    """The committed config with the float32 input of the graph without the uint8 front."""
    match = _INPUT.search(uint8_config)
    if match is None:
        raise ValueError(f"{model}: no uint8 input line in config.pbtxt")
    dims = [d.strip() for d in match.group(1).split(",")]
    if build.UINT8_INPUTS[model].nchw:
        dims = [dims[2], dims[0], dims[1]]
    line = f'input [ {{ name: "input" data_type: TYPE_FP32 dims: [ {", ".join(dims)} ] }} ]'
    return uint8_config[: match.start()] + line + uint8_config[match.end() :]


def repositories(work: Path) -> dict[str, Path]:
    """``uint8`` (the built graphs) and ``float32`` (build/models' graphs) repositories of the
    two models, under ``work``."""
    out = {}
    for kind in ("uint8", "float32"):
        root = work / kind
        for model in MODELS:
            folder = root / model / "1"
            folder.mkdir(parents=True)
            shutil.copyfile(build.PYTHON_MODEL, folder / "model.py")
            config = (build.TRITON_MODELS / model / "config.pbtxt").read_text()
            if kind == "uint8":
                shutil.copyfile(build.onnx_file(build.TRITON_MODELS, model), folder / "model.onnx")
            else:
                source = build.WORK / f"{model}.onnx"
                if not source.is_file():
                    raise SystemExit(f"{source} is missing: run `make models` (--force) first")
                shutil.copyfile(source, folder / "model.onnx")
                config = float_config(config, model)
            (root / model / "config.pbtxt").write_text(config)
        out[kind] = root
    return out


def inputs(faces: Path) -> dict[str, dict[str, InputArray]]:
    """kind -> model -> batch of 2: a photo's two detector passes, two face crops."""
    photo = decode_image(one_face_photos(faces)[0], LIMITS)
    canvases = np.stack([detector.letterbox(photo.work, s)[0] for s in detector.PASSES])
    height, width = photo.work.shape[:2]
    crop = align.box_crop(
        photo.work, Box(width * 0.3, height * 0.2, width * 0.7, height * 0.6), 150
    )
    chips = np.stack([crop, np.ascontiguousarray(crop[:, ::-1])])
    uint8 = {"blazeface": canvases, "dlib_resnet": chips}
    floats = {model: build.UINT8_INPUTS[model].reference(batch) for model, batch in uint8.items()}
    return {"uint8": uint8, "float32": floats}


def preprocessing_ms(batch: InputArray, model: str, repeats: int = 200) -> float:
    """Median milliseconds of numpy's preprocessing of one batch (what the client did before)."""
    front = build.UINT8_INPUTS[model]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        front.reference(batch)  # type: ignore[arg-type]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def server_ms(url: str, model: str) -> dict[str, float]:
    """Triton's mean per-request queue, compute_input, compute_infer, compute_output (ms)."""
    client = tritonclient.grpc.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    finally:
        client.close()
    out = {}
    for key in ("queue", "compute_input", "compute_infer", "compute_output"):
        entry = stats["inference_stats"].get(key, {})
        count = int(entry.get("count", 0))
        out[key] = int(entry.get("ns", 0)) / count / 1e6 if count else 0.0
    return out


async def main_async(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="fg-dtype-"))
    feeds = inputs(faces_dir(args.faces))
    for model, batch in feeds["uint8"].items():
        print(
            f"{model}: batch {batch.shape[0]}, uint8 {feeds['uint8'][model].nbytes} bytes, float32"
            f" {feeds['float32'][model].nbytes} bytes; numpy preprocessing "
            f"{preprocessing_ms(batch, model):.3f} ms per batch (no longer done)"
        )
    repos = repositories(work)
    (work / "t-uint8").mkdir()
    (work / "t-float32").mkdir()
    with (
        tritonserver(repos["uint8"], work / "t-uint8") as uint8_url,
        tritonserver(repos["float32"], work / "t-float32") as float_url,
    ):
        urls = {"uint8": uint8_url, "float32": float_url}
        backends = {kind: await TritonBackend.connect(url, 60) for kind, url in urls.items()}
        for model, outputs in MODELS.items():
            answers = {
                kind: await backends[kind].infer(model, {"input": feeds[kind][model]}, outputs)
                for kind in backends
            }
            same = all(
                np.array_equal(answers["uint8"][name], answers["float32"][name]) for name in outputs
            )
            print(f"{model}: outputs identical through both servers: {same}")
            if not same:
                raise SystemExit(1)
        medians: dict[tuple[str, str], list[float]] = {}
        for round_index in range(args.rounds):
            order = ["float32", "uint8"] if round_index % 2 == 0 else ["uint8", "float32"]
            for model, outputs in MODELS.items():
                for kind in order:
                    feed = {"input": feeds[kind][model]}
                    for _ in range(5):
                        await backends[kind].infer(model, feed, outputs)
                    times = []
                    for _ in range(args.calls):
                        started = time.perf_counter()
                        await backends[kind].infer(model, feed, outputs)
                        times.append((time.perf_counter() - started) * 1000)
                    medians.setdefault((model, kind), []).append(statistics.median(times))
        for model in MODELS:
            row = {kind: statistics.median(medians[(model, kind)]) for kind in ("float32", "uint8")}
            spread = {
                kind: f"{min(medians[(model, kind)]):.2f}-{max(medians[(model, kind)]):.2f}"
                for kind in row
            }
            print(
                f"{model} batch 2, TritonBackend.infer median: float32 {row['float32']:.2f} ms "
                f"(rounds {spread['float32']}), uint8 {row['uint8']:.2f} ms (rounds "
                f"{spread['uint8']}), ratio uint8/float32 {row['uint8'] / row['float32']:.3f}"
            )
            for kind, url in urls.items():
                parts = ", ".join(f"{k} {v:.2f}" for k, v in server_ms(url, model).items())
                print(f"    Triton's mean per request, {kind}: {parts} ms")
        for backend in backends.values():
            await backend.close()
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, help="default: FACEGRID_FACES_DIR, ../shared/faces")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=40)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
