"""The service variables the launcher sets per process: a value in its environment never
reaches the process that reads it, and the launcher names each one it ignores."""

from __future__ import annotations

from pathlib import Path

from launcher.config import load_config
from launcher.mesh import REPLACED_VARIABLES, _service_env, _service_specs, replaced_variables

SENTINEL = "set-by-the-user"

#: Which processes read each replaced variable (by name prefix).
READERS = {
    "FACEGRID_API_HOST": ("api_svc",),
    "FACEGRID_EMBED_HOST": ("embed_svc",),
    "FACEGRID_ADMIN_HOST": ("admin_svc",),
    "FACEGRID_CONSOLE_HOST": ("console",),
    "FACEGRID_EMBED_URL": ("api_svc", "admin_svc"),
    "FACEGRID_TRITON_URL": ("embed_svc",),
    "FACEGRID_API_METRICS_PORT": ("api_svc",),
    "FACEGRID_EMBED_METRICS_PORT": ("embed_svc",),
    "FACEGRID_ADMIN_METRICS_PORT": ("admin_svc",),
    "FACEGRID_API_NODE_NAME": ("api_svc",),
    "FACEGRID_API_STATUS_PORT": ("api_svc",),
    "FACEGRID_INDEX_CACHE_DIR": ("api_svc",),
}


def test_every_replaced_variable_gets_the_launchers_value_in_each_reader(tmp_path: Path) -> None:
    assert set(READERS) == set(REPLACED_VARIABLES)
    config = load_config(
        {"FACEGRID_DATA_DIR": str(tmp_path), "FACEGRID_API_NODES": "2", "FACEGRID_EMBED_NODES": "2"}
    )
    user_env = dict.fromkeys(REPLACED_VARIABLES, SENTINEL)
    specs = _service_specs(config, _service_env(config, "postgresql://db/x", user_env))
    names = [spec.name for spec in specs]
    for variable, readers in READERS.items():
        reading = [spec for spec in specs if spec.name.startswith(readers)]
        assert reading, f"no process of {readers} among {names}"
        for spec in reading:
            value = spec.env.get(variable)
            assert value and value != SENTINEL, f"{spec.name} gets {variable}={value!r}"


def test_the_ignored_variables_are_those_set() -> None:
    env = {
        "FACEGRID_TRITON_URL": "triton:8001",
        "FACEGRID_EMBED_URL": "",  # empty: not set
        "FACEGRID_HOST": "0.0.0.0",  # the launcher's own input
        "FACEGRID_API_NODE_NAME": "mine",
    }
    assert replaced_variables(env) == ["FACEGRID_TRITON_URL", "FACEGRID_API_NODE_NAME"]
    assert replaced_variables({}) == []
