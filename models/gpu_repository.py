"""The GPU variant of the model repository, for NGC ``tritonserver`` images.

Same ONNX files and tensor specs as ``triton_models/``; each config is the committed one with
Triton's onnxruntime backend instead of the python backend and GPU instances instead of CPU ones
(no ``model.py``). Written to ``build/triton_models_gpu/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PYTHON_BACKEND = 'backend: "python"'
ONNX_BACKEND = 'backend: "onnxruntime"'
CPU_KIND = "kind: KIND_CPU"
GPU_KIND = "kind: KIND_GPU"


def gpu_config(cpu_config: str) -> str:
    """The GPU config text for a committed (python backend, CPU) config text."""
    if cpu_config.count(PYTHON_BACKEND) != 1 or CPU_KIND not in cpu_config:
        raise ValueError("config must name the python backend once and use KIND_CPU instances")
    return cpu_config.replace(PYTHON_BACKEND, ONNX_BACKEND).replace(CPU_KIND, GPU_KIND)


def write(cpu_repository: Path, gpu_repository: Path, models: list[str]) -> None:
    """Writes the GPU variant of ``models`` (replacing what was there)."""
    for name in models:
        target = gpu_repository / name
        (target / "1").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cpu_repository / name / "1" / "model.onnx", target / "1" / "model.onnx")
        config = gpu_config((cpu_repository / name / "config.pbtxt").read_text())
        (target / "config.pbtxt").write_text(config)


def current(cpu_repository: Path, gpu_repository: Path, models: list[str]) -> bool:
    """True when every GPU config matches its committed config (ONNX files are checked by
    fingerprint elsewhere)."""
    for name in models:
        config = gpu_repository / name / "config.pbtxt"
        if not config.is_file():
            return False
        if config.read_text() != gpu_config((cpu_repository / name / "config.pbtxt").read_text()):
            return False
    return True
