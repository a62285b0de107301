"""Build hook: refuses to build a wheel without the generated stubs (``make client-wheel`` at
the repository root generates them from proto/ first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

STUB = Path("src/facegrid_client/_proto/facegrid/recognition/v1/recognition_service_pb2.py")


class CustomBuildHook(BuildHookInterface):
    """Checks that the stubs were generated before the wheel is built."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not (Path(self.root) / STUB).is_file():
            raise RuntimeError(
                f"{STUB} is missing: the gRPC stubs are generated from proto/ by "
                "`make client-wheel` at the repository root"
            )
