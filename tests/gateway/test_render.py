"""envoy.yaml is exactly the rendered default, and non-default ports render where they belong."""

import subprocess
import sys
from pathlib import Path

from gateway.render import PUBLIC_SERVICES, GatewayPorts, render

REPO = Path(__file__).resolve().parents[2]


def test_committed_envoy_yaml_is_the_rendered_default() -> None:
    assert (REPO / "envoy.yaml").read_text() == render(GatewayPorts()), (
        "envoy.yaml is stale: run `python -m gateway.render > envoy.yaml`"
    )


def test_custom_ports_reach_listener_and_clusters() -> None:
    text = render(
        GatewayPorts(
            listen_port=18000,
            api_port=15001,
            embed_port=15002,
            admin_svc_port=15003,
            admin_port=19901,
        )
    )
    assert "port_value: 18000" in text and "port_value: 19901" in text
    for port in (15001, 15002, 15003):
        assert f"port_value: {port}}}" in text
    assert "port_value: 8000" not in text


def test_embed_service_is_never_exposed() -> None:
    text = render(GatewayPorts())
    assert all("embedding" not in name for name in PUBLIC_SERVICES)
    assert "facegrid.embedding.v1" not in text
    assert 'prefix: "/facegrid.embedding' not in text


def test_envoy_accepts_the_default_config_and_descriptor() -> None:
    envoy = str(Path(sys.executable).parent / "envoy")
    result = subprocess.run(
        [envoy, "--mode", "validate", "-c", "envoy.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
