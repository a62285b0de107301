"""Face photos for tests, from registry packages: scikit-image's astronaut (installed with the
venv) and the group photos of npm ``@vladmandic/face-api``'s demo folder, read from the pinned
tarball that ``make models`` puts in ``build/cache`` (models/sources.py ``FACE_API``). Nothing
is fetched here: a missing or altered tarball fails the test, naming the command to run. Also
where the shared real photos are (``shared_faces``)."""

from __future__ import annotations

import functools
import os
import tarfile
from pathlib import Path

import pytest

from models import sources
from models.fetch import sha256

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "build" / "cache"
#: Faces a person counts in each demo photo (sample1.jpg ... sample6.jpg).
FACE_API_COUNTS = {
    "sample1.jpg": 3,
    "sample2.jpg": 3,
    "sample3.jpg": 3,
    "sample4.jpg": 4,
    "sample5.jpg": 5,
    "sample6.jpg": 4,
}


def shared_faces() -> Path:
    """$FACEGRID_FACES_DIR if set, else ../shared/faces beside the checkout (CI), else the
    machine's /work/shared/faces: real photos of known people and group photos, described by its
    manifest.json."""
    chosen = os.environ.get("FACEGRID_FACES_DIR")
    candidates = [Path(chosen)] if chosen else []
    candidates += [REPO.parent / "shared" / "faces", Path("/work/shared/faces")]
    for path in candidates:
        if (path / "manifest.json").exists():
            return path
    pytest.fail("the shared face photos (shared/faces/manifest.json) are missing")


def astronaut_png() -> bytes:
    """scikit-image's astronaut (Eileen Collins), 512 x 512 PNG."""
    import skimage

    return (Path(skimage.__file__).parent / "data" / "astronaut.png").read_bytes()


@functools.cache
def face_api_samples() -> dict[str, bytes]:
    """The six demo group photos by file name."""
    archive = CACHE / sources.FACE_API.filename
    if not archive.is_file():
        pytest.fail(f"{archive} is missing: run `make models` (it fetches the test photos)")
    if sha256(archive) != sources.FACE_API.sha256:
        pytest.fail(f"{archive} is not the pinned {sources.FACE_API.spec}: run `make models`")
    wanted = {f"{sources.FACE_API_DEMO_FOLDER}/{name}": name for name in FACE_API_COUNTS}
    photos = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.name in wanted and (handle := tar.extractfile(member)) is not None:
                photos[wanted[member.name]] = handle.read()
    assert set(photos) == set(FACE_API_COUNTS), f"{archive} lacks {wanted}"
    return {name: photos[name] for name in FACE_API_COUNTS}
