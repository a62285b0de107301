"""The Python client as a user gets it: its wheel (``make client-wheel``) installed into a fresh
venv under build/ (not the project's: the server's ``facegrid`` package is not there), and its
own tests (clients/python/tests) run there: the unit tests, then every call against this
session's mesh through Envoy and directly to the services."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers.photos import shared_faces
from tests.helpers.rest_client import call
from tests.launcher.helpers import REPO, MeshHandle, sql

pytestmark = pytest.mark.integration

CLIENT = REPO / "clients" / "python"
VENV = REPO / "build" / "client-venv"
#: Runtime and test dependencies of the client's tests, installed at the project's pins.
PINNED = ("grpcio", "protobuf", "googleapis-common-protos", "grpcio-status", "numpy", "pillow")
PASSWORD = "correct horse battery staple"


def pins(names: tuple[str, ...]) -> list[str]:
    """``name==version`` of each name, from requirements.txt."""
    text = (REPO / "requirements.txt").read_text()
    found = dict(re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", text, re.M))
    return [f"{name}=={found[name]}" for name in names]


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def client_python() -> Path:
    """The python of a new venv holding only the client's wheel (with the numpy extra) and
    pytest."""
    built = run(["make", "client-wheel"], cwd=REPO)
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = sorted((REPO / "build" / "dist").glob("facegrid_client-*.whl"))
    shutil.rmtree(VENV, ignore_errors=True)
    created = run([sys.executable, "-m", "venv", str(VENV)])
    assert created.returncode == 0, created.stderr
    python = VENV / "bin" / "python"
    constraints = VENV / "constraints.txt"
    constraints.write_text("\n".join(pins((*PINNED, "pytest"))) + "\n")
    installed = run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", str(constraints), f"{wheel}[numpy]", "pytest"],
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def client_tests(python: Path, marker: str, env: dict[str, str]) -> int:
    """Runs the client's tests of ``marker`` in its venv (from its folder, so that neither the
    repository nor its sources are importable), asserting they all passed; how many did."""
    result = run(
        [str(python), "-m", "pytest", "-m", marker, "-q", "tests"],
        cwd=CLIENT,
        env={**os.environ, **env, "PYTHONPATH": ""},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    passed = re.search(r"\b(\d+) passed\b", output)
    assert passed and " failed" not in output and " skipped" not in output, output[-3000:]
    return int(passed.group(1))


def test_the_wheel_installs_alone_into_a_fresh_venv(client_python: Path) -> None:
    probe = run(
        [str(client_python), "-c",
         "import facegrid_client, importlib.util as u;"
         "print(facegrid_client.__file__); print(u.find_spec('facegrid'))"],
        cwd=CLIENT,
        env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    location, server_package = probe.stdout.split()
    assert Path(location).is_relative_to(VENV)
    assert server_package == "None"


def test_client_unit_tests(client_python: Path) -> None:
    assert client_tests(client_python, "not integration", {}) >= 19


def test_every_client_call_against_the_mesh(client_python: Path, mesh: MeshHandle) -> None:
    email = f"sdk-{uuid.uuid4().hex[:10]}@example.com"
    user = {"email": email, "password": PASSWORD, "first_name": "Sdk", "last_name": "Tests"}
    reply = call("POST", f"{mesh.rest}/api/v1/admin/auth/signup", json=user)
    assert reply.status == 201, reply.body
    sql(mesh, "UPDATE users SET global_role = 'ADMINISTRATOR' WHERE email = $1", email)
    env = {
        "FACEGRID_TEST_TARGET": mesh.envoy_grpc,
        "FACEGRID_TEST_API_TARGET": mesh.api,
        "FACEGRID_TEST_ADMIN_TARGET": mesh.admin,
        "FACEGRID_TEST_ADMIN_EMAIL": email,
        "FACEGRID_TEST_ADMIN_PASSWORD": PASSWORD,
        "FACEGRID_TEST_FACES": str(shared_faces()),
    }
    assert client_tests(client_python, "integration", env) >= 21
