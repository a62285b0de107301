"""Build-venv step: converts BlazeFace's .tflite to ONNX with PyPI ``tflite2onnx``.

Run by ``models.build`` as ``.venv-build/bin/python -m models.blazeface_tflite IN OUT`` so that
the converter and its dependencies never enter the runtime environment.
"""

from __future__ import annotations

import sys

import tflite2onnx


def main(argv: list[str]) -> int:
    """Converts ``argv[1]`` (.tflite) to ``argv[2]`` (.onnx, batch fixed at 1)."""
    tflite2onnx.convert(argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
