"""The environment the launcher gives each process it starts: glibc's malloc arenas capped for
the Python services (docs/operations.md "Memory"), an operator's own value kept, Triton left
alone."""

from __future__ import annotations

from pathlib import Path

from launcher.config import load_config
from launcher.mesh import MALLOC_ARENA_MAX, _service_env, _service_specs


def _envs(tmp_path: Path, base: dict[str, str]) -> dict[str, dict[str, str]]:
    config = load_config({"FACEGRID_DATA_DIR": str(tmp_path), "FACEGRID_API_NODES": "2"})
    env = _service_env(config, "postgresql://u@localhost/db", base)
    return {spec.name: spec.env for spec in _service_specs(config, env)}


def test_python_services_get_two_malloc_arenas_and_triton_its_own_default(
    tmp_path: Path,
) -> None:
    envs = _envs(tmp_path, {"PATH": "/usr/bin"})
    python = ["embed_svc-0", "admin_svc", "api_svc-0", "api_svc-1", "console"]
    assert sorted(envs) == sorted([*python, "triton"])
    assert MALLOC_ARENA_MAX == "2"
    for name in python:
        assert envs[name]["MALLOC_ARENA_MAX"] == "2", name
    assert "MALLOC_ARENA_MAX" not in envs["triton"]


def test_an_operators_malloc_arena_max_is_kept(tmp_path: Path) -> None:
    envs = _envs(tmp_path, {"PATH": "/usr/bin", "MALLOC_ARENA_MAX": "8"})
    assert {env["MALLOC_ARENA_MAX"] for env in envs.values()} == {"8"}
