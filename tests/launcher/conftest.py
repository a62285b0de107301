"""The whole mesh, started by the real launcher (``python -m launcher``) on free ports, and what
the tests of it share: the demo API keys, the photos, an empty demo collection.

PostgreSQL (embedded), Triton, embed_svc, admin_svc, api_svc and Envoy run as real processes;
the session ends with SIGINT to the launcher, as Ctrl-C would, and checks they all stopped.
``tests.launcher.helpers.running_mesh`` starts one with several api_svc and embed_svc nodes
(test_mesh_scale_out.py).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from tests.helpers.photos import astronaut_png, face_api_samples
from tests.launcher.helpers import GROUP, SUBJECTS, MeshHandle, rest, running_mesh, sql


@pytest.fixture(scope="session")
def mesh(short_tmp: Path) -> Iterator[MeshHandle]:
    """The default mesh (one node of each service), shared by the session."""
    with running_mesh(short_tmp) as handle:
        yield handle


@pytest.fixture(scope="session")
def keys(mesh: MeshHandle) -> dict[str, str]:
    """The demo API keys admin_svc announced at the mesh's first start, by service type."""
    text = (mesh.data_dir / "logs" / "admin_svc.log").read_text()
    found = dict(re.findall(r"^\s+(RECOGNITION|DETECTION|VERIFICATION)\s+\S+\s+(\S+)$", text, re.M))
    assert set(found) == {"RECOGNITION", "DETECTION", "VERIFICATION"}, text[-2000:]
    return found


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    """The astronaut, mirrored, a blank image, the five-face group photo and another person."""
    samples = face_api_samples()
    astronaut = astronaut_png()
    flipped = io.BytesIO()
    ImageOps.mirror(Image.open(io.BytesIO(astronaut))).save(flipped, format="PNG")
    blank = io.BytesIO()
    Image.new("RGB", (320, 240), "white").save(blank, format="PNG")
    return {
        "astronaut": astronaut,
        "flipped": flipped.getvalue(),
        "blank": blank.getvalue(),
        GROUP: samples[GROUP],
        "other": samples["sample1.jpg"],
    }


@pytest.fixture
def empty_collection(mesh: MeshHandle, keys: dict[str, str]) -> Iterator[None]:
    """The test starts (and leaves) the demo recognition collection empty and writable."""
    assert rest(mesh, keys, "DELETE", SUBJECTS).status == 200
    yield
    sql(mesh, "UPDATE collection_state SET writes_blocked = false WHERE writes_blocked")
    assert rest(mesh, keys, "DELETE", SUBJECTS).status == 200
