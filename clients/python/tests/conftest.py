"""Fixtures of the client's tests, run with the client installed from its wheel.

Unit tests need nothing else. Integration tests (``-m integration``) call a running mesh,
named by environment variables (tests/launcher/test_mesh_python_client.py in the repository sets
them for the mesh it starts):

- ``FACEGRID_TEST_TARGET``: Envoy's host:port;
- ``FACEGRID_TEST_API_TARGET`` / ``FACEGRID_TEST_ADMIN_TARGET``: api_svc's and admin_svc's own
  host:port (calls made directly, as inside a cluster);
- ``FACEGRID_TEST_ADMIN_EMAIL`` / ``FACEGRID_TEST_ADMIN_PASSWORD``: a global ADMINISTRATOR;
- ``FACEGRID_TEST_FACES``: the folder of real photos (manifest.json, one folder per person).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from facegrid_client import Facegrid

T = TypeVar("T")


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: the integration tests need a running mesh (conftest.py)")
    return value


def until(produce: Callable[[], T], accept: Callable[[T], bool], *, timeout_s: float = 20.0) -> T:
    """Calls ``produce`` until ``accept`` takes its result, at most ``timeout_s`` seconds (the
    mesh's in-memory indexes follow the database asynchronously); that result."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = produce()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not accepted within {timeout_s} s: {value!r}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Mesh:
    target: str
    api_target: str
    admin_target: str


@dataclass(frozen=True)
class Collection:
    """A new application of the session with one service of each type."""

    application_id: str
    recognition_id: str
    keys: dict[str, str]
    """API keys by service type: RECOGNITION, DETECTION, VERIFICATION."""


@pytest.fixture(scope="session")
def mesh() -> Mesh:
    return Mesh(
        env("FACEGRID_TEST_TARGET"),
        env("FACEGRID_TEST_API_TARGET"),
        env("FACEGRID_TEST_ADMIN_TARGET"),
    )


@pytest.fixture(scope="session")
def admin_token(mesh: Mesh) -> str:
    with Facegrid(mesh.target) as fg:
        session = fg.admin.sign_in(
            env("FACEGRID_TEST_ADMIN_EMAIL"), env("FACEGRID_TEST_ADMIN_PASSWORD")
        )
    assert session.token_type == "Bearer"
    return session.access_token


@pytest.fixture(scope="session")
def collection(mesh: Mesh, admin_token: str) -> Iterator[Collection]:
    with Facegrid(mesh.target, token=admin_token) as fg:
        app = fg.admin.create_application(f"sdk {uuid.uuid4().hex[:12]}")
        services = {
            kind: fg.admin.create_service(app.application_id, kind.lower(), kind)
            for kind in ("RECOGNITION", "DETECTION", "VERIFICATION")
        }
        yield Collection(
            app.application_id,
            services["RECOGNITION"].service_id,
            {kind: service.api_key for kind, service in services.items()},
        )
        fg.admin.delete_application(app.application_id)


@pytest.fixture(scope="session")
def people() -> dict[str, list[Path]]:
    """Photos of one face by person (those with at least three), from the manifest."""
    root = Path(env("FACEGRID_TEST_FACES"))
    manifest = json.loads((root / "manifest.json").read_text())
    found = {
        person: [root / entry["file"] for entry in entries]
        for person, entries in manifest["identities"].items()
    }
    return {person: paths for person, paths in sorted(found.items()) if len(paths) >= 3}


@pytest.fixture(scope="session")
def group_photo() -> Path:
    return Path(env("FACEGRID_TEST_FACES")) / "groups" / "02_2faces.jpg"
