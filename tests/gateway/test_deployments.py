"""The container deployments' Envoy configs: current with the template, upstreams by DNS name,
and accepted by Envoy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.deployments import CONTAINER_DESCRIPTOR, DEPLOYMENTS, write_all
from gateway.limits import ROUTES
from gateway.render import DnsUpstreams, GatewayPorts, render

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_committed_deployment_config_is_current(name: str) -> None:
    path, ports = DEPLOYMENTS[name]
    assert path.read_text() == render(ports), (
        f"{path.relative_to(REPO)} is stale: run `python -m gateway.deployments`"
    )


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_deployment_configs_carry_the_route_limits_and_the_client_address(name: str) -> None:
    path, _ = DEPLOYMENTS[name]
    text = path.read_text()
    # The body limit filter with a limit per route, the edge header limit, Envoy's peer as client.
    assert "name: body_limit" in text and text.count("max_request_bytes:") > len(ROUTES)
    assert "max_request_headers_kb: 8" in text
    assert "xff_num_trusted_hops: 0" in text and "x-facegrid-client-address" in text


def test_trusted_hops_render_into_the_deployment_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    descriptor = tmp_path / "descriptor.pb"
    descriptor.write_bytes(b"descriptor")
    targets = {
        name: (tmp_path / name / "envoy.yaml", ports) for name, (_, ports) in DEPLOYMENTS.items()
    }
    monkeypatch.setattr("gateway.deployments.DEPLOYMENTS", targets)
    written = write_all(descriptor, trusted_hops=2)
    for path, _ in targets.values():
        assert path in written and "xff_num_trusted_hops: 2" in path.read_text()
    assert (tmp_path / "kubernetes" / "descriptor.pb").read_bytes() == b"descriptor"


def test_dns_upstreams_make_strict_dns_clusters_of_the_names() -> None:
    text = render(GatewayPorts(dns=DnsUpstreams(api="a.example", embed="e.example", admin="m")))
    # Routed api_svc, admin_svc and console, and the three readiness-only clusters.
    assert text.count("type: STRICT_DNS") == 6 and "type: STATIC" not in text
    assert text.count("{address: a.example, port_value: 50051}") == 2
    assert text.count("{address: e.example, port_value: 50052}") == 1
    assert text.count("{address: m, port_value: 50053}") == 2
    assert text.count("dns_lookup_family: V4_PREFERRED") == 6
    assert "{address: console, port_value: 8300}" in text


def test_without_names_every_upstream_is_the_static_host() -> None:
    text = render(GatewayPorts(host="10.1.2.3"))
    assert text.count("type: STATIC") == 6 and "STRICT_DNS" not in text
    assert text.count("address: 10.1.2.3, port_value: 5005") == 5


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_envoy_accepts_the_deployment_config(name: str, tmp_path: Path) -> None:
    path, _ = DEPLOYMENTS[name]
    config = tmp_path / "envoy.yaml"
    descriptor = str(REPO / "gateway" / "descriptor.pb")
    config.write_text(path.read_text().replace(CONTAINER_DESCRIPTOR, descriptor))
    envoy = str(Path(sys.executable).parent / "envoy")
    result = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
