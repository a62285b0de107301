"""The container deployments' Envoy configs: current with the template, upstreams by DNS name,
and accepted by Envoy."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.deployments import CONTAINER_DESCRIPTOR, DEPLOYMENTS, STATS_PORT, write_all
from gateway.limits import ROUTES
from gateway.render import STATS_PATH, DnsUpstreams, GatewayPorts, render
from tests.helpers.rest_client import call

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
def test_deployments_serve_envoy_stats_on_their_own_port(name: str) -> None:
    path, ports = DEPLOYMENTS[name]
    assert ports.stats_port == STATS_PORT
    assert f"port_value: {STATS_PORT}" in path.read_text()


@pytest.mark.integration
def test_the_stats_listener_serves_prometheus_stats_and_nothing_else_of_the_admin(
    free_port: Callable[[], int], start_envoy: Callable[[GatewayPorts], str]
) -> None:
    ports = GatewayPorts(listen_port=free_port(), admin_port=free_port(), stats_port=free_port())
    start_envoy(ports)
    stats = f"http://127.0.0.1:{ports.stats_port}"
    answer = call("GET", f"{stats}{STATS_PATH}")
    assert answer.status == 200
    assert b"envoy_server_live" in answer.body  # Prometheus text of Envoy's own stats
    # The admin interface's other endpoints stay on 127.0.0.1:admin_port only.
    assert call("POST", f"{stats}/quitquitquit", raw=b"").status == 404
    assert call("GET", f"{stats}/config_dump").status == 404
    assert call("GET", f"{stats}{STATS_PATH}").status == 200  # still running


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
