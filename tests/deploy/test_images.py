"""The services' image installs every package the services import: requirements.txt less the
tools named in deploy/images/not-in-service-image.txt (filtered by service_requirements.py). The
console's image holds every module `python -m console` imports, and the packages they need."""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
import runpy
import sys
from collections.abc import Mapping
from importlib.metadata import distributions, packages_distributions
from pathlib import Path

import pytest

from tests.deploy.helpers import podman

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "deploy" / "images"
SERVICE_CODE = ("api_svc", "embed_svc", "admin_svc", "facegrid")
#: Imported by name at run time (importlib), not by an import statement.
IMPORTED_BY_NAME = {"face_recognition_models"}

_filter = runpy.run_path(str(IMAGES / "service_requirements.py"))
kept_lines = _filter["kept_lines"]
requirement_name = _filter["requirement_name"]
normalise = _filter["normalise"]


@functools.cache
def imported_modules() -> frozenset[str]:
    """Top-level modules imported anywhere in the services' code (generated stubs included)."""
    names = set(IMPORTED_BY_NAME)
    for package in SERVICE_CODE:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return frozenset(names - set(sys.stdlib_module_names) - set(SERVICE_CODE) - {"__future__"})


def service_packages() -> set[str]:
    lines = kept_lines(
        (REPO / "requirements.txt").read_text(),
        (IMAGES / "not-in-service-image.txt").read_text(),
    )
    return {requirement_name(line) for line in lines}


@functools.cache
def _module_owners() -> Mapping[str, list[str]]:
    return packages_distributions()


@functools.cache
def owners_of(module: str) -> frozenset[str]:
    """Distributions providing a top-level module (by name, else by the files they install)."""
    owners = {normalise(d) for d in _module_owners().get(module, [])}
    if owners:
        return frozenset(owners)
    spec = importlib.util.find_spec(module)
    origin = Path(spec.origin).resolve() if spec and spec.origin else None
    for dist in distributions():
        files = dist.files or []
        if origin and any(Path(str(dist.locate_file(f))).resolve() == origin for f in files):
            owners.add(normalise(dist.metadata["Name"]))
    return frozenset(owners)


def test_every_imported_package_goes_into_the_service_image() -> None:
    excluded = {
        name
        for line in (IMAGES / "not-in-service-image.txt").read_text().splitlines()
        if (name := requirement_name(line))
    }
    kept = service_packages()
    modules = imported_modules()
    assert {"grpc", "asyncpg", "cv2", "faiss", "jwt"} <= modules
    for module in sorted(modules):
        owners = owners_of(module)
        assert owners, f"{module}: no installed distribution provides it"
        assert owners & kept or not owners & excluded, (
            f"{module} (from {sorted(owners)}) is imported by the services but left out of "
            "their image by deploy/images/not-in-service-image.txt"
        )


def test_the_service_image_installs_only_what_the_services_import() -> None:
    """A package in requirements.txt that no service imports (a test or console tool) is named in
    not-in-service-image.txt: the services' image stays as small and quick to build as it can."""
    kept = service_packages()
    imported = set().union(*(owners_of(module) for module in imported_modules()))
    assert "grpcio" in imported and "onnxruntime" in imported
    assert not kept - imported, (
        f"{sorted(kept - imported)} go into the services' image, which imports none of them: "
        "name them in deploy/images/not-in-service-image.txt"
    )


def test_the_exclusions_name_packages_of_requirements_txt() -> None:
    pinned = {
        name
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if (name := requirement_name(line))
    }
    excluded = {
        name
        for line in (IMAGES / "not-in-service-image.txt").read_text().splitlines()
        if (name := requirement_name(line))
    }
    assert excluded <= pinned, sorted(excluded - pinned)
    assert not service_packages() & excluded


def module_file(module: str) -> Path | None:
    """The repository file of ``module`` (a package's __init__.py), or None if not ours."""
    base = REPO.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def console_closure() -> tuple[set[Path], set[str]]:
    """(repository files, third-party top-level modules) that ``python -m console`` imports:
    followed through the repository's own modules from console/__main__.py."""
    files: set[Path] = set()
    external: set[str] = set()
    todo = ["console.__main__"]
    while todo:
        module = todo.pop()
        path = module_file(module)
        if path is None or path in files:
            continue
        files.add(path)
        parents = module.split(".")
        for part in range(1, len(parents)):
            todo.append(".".join(parents[:part]))  # packages run their __init__ first
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                if top in ("console", "facegrid"):
                    todo.append(name)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    external.add(top)
    return files, external


def test_the_console_image_holds_what_the_console_imports() -> None:
    files, external = console_closure()
    assert REPO / "console" / "server.py" in files and REPO / "facegrid" / "logs.py" in files
    assert {"aiohttp", "structlog"} <= external
    containerfile = (IMAGES / "console.Containerfile").read_text()
    copied = set(re.findall(r"\b((?:console|facegrid)/[\w/]+\.py)\b", containerfile))
    missing = sorted({str(f.relative_to(REPO)) for f in files} - copied)
    assert not missing, f"console.Containerfile copies none of {missing}"
    packages = {
        name
        for line in (IMAGES / "console-image.txt").read_text().splitlines()
        if (name := requirement_name(line))
    }
    pinned = {
        name
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if (name := requirement_name(line))
    }
    assert packages <= pinned, sorted(packages - pinned)
    for module in sorted(external):
        assert owners_of(module) & packages, (
            f"python -m console imports {module}, which no package of console-image.txt provides"
        )


def test_the_filter_keeps_pins_and_extras_and_drops_named_packages() -> None:
    requirements = "# c\nGrpcio==1.0\ntritonclient[grpc]==2.73.0\npy_test==1 # x\n\n"
    assert kept_lines(requirements, "py-test\n# comment\n") == [
        "Grpcio==1.0",
        "tritonclient[grpc]==2.73.0",
    ]


@pytest.mark.integration
@pytest.mark.containers
def test_the_gpu_triton_image_carries_the_gpu_model_repository() -> None:
    """NVIDIA's base cannot be pulled here: the GPU Containerfile is built on the local base
    instead, which checks its build context (build/triton_models_gpu past .containerignore)."""
    tag = "localhost/facegrid-triton-gpu-check:latest"
    base = "localhost/facegrid-base:bookworm"
    podman(
        "build",
        "--build-arg",
        f"TRITON_GPU_BASE={base}",
        "-f",
        str(IMAGES / "triton-gpu.Containerfile"),
        "-t",
        tag,
        str(REPO),
        timeout_s=300,
    )
    try:
        listing = podman(
            "run",
            "--rm",
            "--user",
            "0",
            "--entrypoint",
            "sh",
            tag,
            "-c",
            "ls /models/*/1/model.onnx; grep -l 'kind: KIND_GPU' /models/*/config.pbtxt;"
            " grep -L 'backend: \"onnxruntime\"' /models/*/config.pbtxt",
        ).split()
    finally:
        podman("rmi", "-f", tag)
    models = sorted(path.parent.name for path in (REPO / "triton_models").glob("*/config.pbtxt"))
    assert [p for p in listing if p.endswith("model.onnx")] == [
        f"/models/{m}/1/model.onnx" for m in models
    ]
    # Every config names GPU instances, none lacks the onnxruntime backend.
    assert [p for p in listing if p.endswith(".pbtxt")] == [
        f"/models/{m}/config.pbtxt" for m in models
    ]
