"""Fixtures of the model tests: the built repository (``make models``'s pipeline, cached) and
real faces from registry packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import build
from tests.models.face_chips import Face, find_faces


@pytest.fixture(scope="session")
def repository() -> Path:
    """``triton_models/`` with every model built (seconds when already built)."""
    assert build.main([]) == 0
    return build.TRITON_MODELS


@pytest.fixture(scope="session")
def faces() -> list[Face]:
    """Every face dlib finds in the test photos (at least the astronaut's)."""
    found = find_faces()
    assert any(face.source == "astronaut.png" for face in found)
    return found
