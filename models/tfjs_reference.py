"""TensorFlow.js as the reference for the TFJS->ONNX conversions (build-time only).

``models/tfjs_reference/`` pins ``@tensorflow/tfjs-core``, ``-converter`` and ``-backend-cpu``
4.22.0 by a lockfile (sha512 integrity); ``install`` runs ``npm ci`` into a build folder and
``run`` executes a graph model there with node, on TFJS's pure-JS CPU kernels.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from models.progress import step

SOURCE = Path(__file__).resolve().parent / "tfjs_reference"
FILES = ("package.json", "package-lock.json", "run.js")


def install(target: Path) -> Path:
    """Installs the pinned packages and the runner into ``target`` (once); returns it."""
    stamp = target / ".installed"
    wanted = "".join((SOURCE / name).read_text() for name in FILES)
    if stamp.exists() and stamp.read_text() == wanted:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy2(SOURCE / name, target / name)
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to build the models (TFJS sources and reference)")
    with step(
        "installing the TensorFlow.js reference (npm ci, models/tfjs_reference)",
        "installed the TensorFlow.js reference",
    ):
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--silent"],
            cwd=target,
            check=True,
        )
    stamp.write_text(wanted)
    return target


def run(
    installed: Path, model_json: Path, batch: NDArray[np.float32], outputs: Sequence[str]
) -> list[NDArray[np.float32]]:
    """The named output nodes of a TFJS graph model for an NHWC float32 batch."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is needed to run the TFJS reference")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.ascontiguousarray(batch, dtype="<f4").tofile(folder / "input.f32")
        done = subprocess.run(
            [
                node,
                str((installed / "run.js").resolve()),
                str(model_json.resolve()),
                str(folder / "input.f32"),
                ",".join(str(d) for d in batch.shape),
                str(folder),
                *outputs,
            ],
            cwd=installed,
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"TFJS reference failed on {model_json.name}: {done.stderr[-2000:]}")
        results = [np.fromfile(folder / f"{i}.f32", dtype="<f4") for i in range(len(outputs))]
    return [r.reshape(len(batch), -1).astype(np.float32) for r in results]
