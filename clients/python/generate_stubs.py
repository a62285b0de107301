"""Generates the client's Python stubs from the repository's proto/ tree.

The stubs of the public services (``facegrid.common.v1``, ``facegrid.recognition.v1``,
``facegrid.admin.v1``) are written under ``facegrid_client/_proto/`` and their imports rewritten
from ``facegrid.`` to ``facegrid_client._proto.facegrid.``, so the wheel never ships a
``facegrid`` package (the server's). The descriptors keep their proto file names and packages:
protobuf's default pool accepts the same file twice only when both copies are identical, so a
process importing both the server's stubs and the client's needs both built from the same protos.

Usage (the runtime venv of the repository has grpcio-tools and googleapis-common-protos):
    python clients/python/generate_stubs.py [PROTO_ROOT] [OUT]
"""

from __future__ import annotations

import re
import shutil
import sys
from importlib import resources
from pathlib import Path

import google.api
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
#: The public contracts (embed_svc's is internal to the mesh).
PROTOS = (
    "facegrid/common/v1/common.proto",
    "facegrid/recognition/v1/recognition_service.proto",
    "facegrid/admin/v1/admin_service.proto",
)
PACKAGE = "facegrid_client._proto"
_IMPORT = re.compile(r"^(from|import) facegrid\.", re.MULTILINE)


def rewrite_imports(source: str) -> str:
    """``from facegrid.x import y`` -> ``from facegrid_client._proto.facegrid.x import y``."""
    return _IMPORT.sub(rf"\1 {PACKAGE}.facegrid.", source)


def generate(proto_root: Path, out: Path) -> list[Path]:
    """Writes the stubs of PROTOS under ``out`` (emptied first); the files written."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    googleapis = Path(next(iter(google.api.__path__))).parent.parent
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{googleapis}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *PROTOS,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {proto_root}")
    written = sorted(p for p in out.rglob("*") if p.suffix in (".py", ".pyi"))
    for path in written:
        path.write_text(rewrite_imports(path.read_text()))
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return written


def main(argv: list[str]) -> None:
    proto_root = Path(argv[1]) if len(argv) > 1 else HERE.parents[1] / "proto"
    out = Path(argv[2]) if len(argv) > 2 else HERE / "src" / "facegrid_client" / "_proto"
    written = generate(proto_root, out)
    print(f"{len(written)} stub files in {out}")


if __name__ == "__main__":
    main(sys.argv)
