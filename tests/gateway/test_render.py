"""envoy.yaml is exactly the rendered default, and non-default ports render where they belong."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from facegrid.recognition.v1 import recognition_service_pb2
from gateway.render import MAX_NODES, PUBLIC_SERVICES, RECOGNITION_READS, GatewayPorts, render

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


@pytest.mark.integration
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


def _config(ports: GatewayPorts) -> dict:
    return yaml.safe_load(render(ports))


def _clusters(config: dict) -> dict[str, dict]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def _endpoints(cluster: dict) -> list[int]:
    (group,) = cluster["load_assignment"]["endpoints"]
    return [e["endpoint"]["address"]["socket_address"]["port_value"] for e in group["lb_endpoints"]]


def test_clusters_list_every_node_and_readiness_clusters_check_facegrid_ready() -> None:
    config = _config(GatewayPorts(api_port=51051, embed_port=51052, api_nodes=3, embed_nodes=2))
    clusters = _clusters(config)
    assert set(clusters) == {
        "api_svc",
        "admin_svc",
        "api_svc_ready",
        "admin_svc_ready",
        "embed_svc_ready",
        "console",
    }
    assert _endpoints(clusters.pop("console")) == [8300]
    assert _endpoints(clusters["api_svc"]) == [51051, 51151, 51251]
    assert _endpoints(clusters["api_svc_ready"]) == [51051, 51151, 51251]
    assert _endpoints(clusters["embed_svc_ready"]) == [51052, 51152]
    for name, cluster in clusters.items():
        (check,) = cluster["health_checks"]
        wanted = {"service_name": "facegrid.ready"} if name.endswith("_ready") else {}
        assert check["grpc_health_check"] == wanted, name
        routed = not name.endswith("_ready")
        assert ("outlier_detection" in cluster) == routed, name


def _routes(config: dict) -> tuple[dict, list[dict]]:
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (host,) = manager["route_config"]["virtual_hosts"]
    return host, host["routes"]


def test_no_route_reaches_a_readiness_cluster_and_ready_needs_one_host_each() -> None:
    config = _config(GatewayPorts())
    _, routes = _routes(config)
    assert {r["route"]["cluster"] for r in routes if "route" in r} == {
        "api_svc",
        "admin_svc",
        "console",
    }
    # REST paths match only before the transcoder rewrites them (to hold the body to its limit);
    # unknown gRPC and /api/ paths answer 404 rather than reach the console
    assert all(r["direct_response"] == {"status": 404} for r in routes if "route" not in r)
    listener = config["static_resources"]["listeners"][0]
    filters = listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
    (readiness,) = [f for f in filters if f["name"] == "readiness"]
    minimum = readiness["typed_config"]["cluster_min_healthy_percentages"]
    assert set(minimum) >= {"api_svc_ready", "admin_svc_ready", "embed_svc_ready"}
    assert all(value["value"] <= 100 / MAX_NODES for value in minimum.values())


def test_every_other_path_reaches_the_console_without_the_rest_filters() -> None:
    _, routes = _routes(_config(GatewayPorts(console_port=18300)))
    *api, grpc_rest, api_rest, console = routes
    assert all(r["route"]["cluster"] in ("api_svc", "admin_svc") for r in api if "route" in r)
    assert all(r["direct_response"] == {"status": 404} for r in api if "route" not in r)
    assert grpc_rest["match"] == {"prefix": "/", "grpc": {}}
    assert api_rest["match"] == {"prefix": "/api/"}
    assert grpc_rest["direct_response"] == api_rest["direct_response"] == {"status": 404}
    assert console["match"] == {"prefix": "/"} and console["route"]["cluster"] == "console"
    disabled = console["typed_per_filter_config"]
    assert set(disabled) == {"envoy.filters.http.lua", "envoy.filters.http.grpc_json_transcoder"}
    assert all(config["disabled"] is True for config in disabled.values())


def _retry_on(route: dict | None, host: dict) -> set[str]:
    policy = (route or {}).get("retry_policy") or host["retry_policy"]
    return set(policy["retry_on"].split(","))


def _route_for(routes: list[dict], path: str) -> dict:
    for route in routes:
        match = route["match"]
        if match.get("path") == path or path.startswith(match.get("prefix", "\0")):
            return route["route"]
    raise AssertionError(f"no route for {path}")


def test_only_reads_are_retried_after_they_may_have_reached_a_node() -> None:
    host, routes = _routes(_config(GatewayPorts()))
    service = recognition_service_pb2.DESCRIPTOR.services_by_name["RecognitionService"]
    methods = {m.name for m in service.methods}
    assert set(RECOGNITION_READS) <= methods  # no stale names
    never_reached = {"connect-failure", "refused-stream", "reset-before-request"}
    for name in methods:
        retry_on = _retry_on(_route_for(routes, f"/{service.full_name}/{name}"), host)
        if name in RECOGNITION_READS:
            assert retry_on == never_reached | {"reset", "unavailable"}, name
        else:
            assert retry_on == never_reached, name
    for name in ("AddFace", "CreateSubject", "RenameSubject", "DeleteFace"):
        assert name not in RECOGNITION_READS
    admin = "/facegrid.admin.v1.AdminService"
    assert "reset" in _retry_on(_route_for(routes, f"{admin}/ListUsers"), host)
    assert "reset" not in _retry_on(_route_for(routes, f"{admin}/SignIn"), host)


def test_node_counts_outside_1_to_10_are_refused() -> None:
    with pytest.raises(ValueError, match="api_nodes"):
        render(GatewayPorts(api_nodes=11))


def test_the_connection_limit_and_heap_budget_are_rendered_and_checked() -> None:
    ports = GatewayPorts(max_connections=123, max_heap_mib=77, stats_port=9902)
    config = yaml.safe_load(render(ports))
    overload = config["overload_manager"]
    monitors = {m["name"]: m["typed_config"] for m in overload["resource_monitors"]}
    connections = monitors["envoy.resource_monitors.global_downstream_max_connections"]
    assert connections["max_active_downstream_connections"] == 123
    heap = monitors["envoy.resource_monitors.fixed_heap"]
    assert heap["max_heap_size_bytes"] == 77 * 1024 * 1024
    actions = {a["name"]: a["triggers"] for a in overload["actions"]}
    [refusal] = actions["envoy.overload_actions.stop_accepting_requests"]
    assert refusal["name"] == "envoy.resource_monitors.fixed_heap"
    assert 0.9 <= refusal["threshold"]["value"] < 1
    assert config["admin"]["ignore_global_conn_limit"] is True
    listeners = {entry["name"]: entry for entry in config["static_resources"]["listeners"]}
    assert listeners["stats"]["ignore_global_conn_limit"] is True
    assert "ignore_global_conn_limit" not in listeners["public"]
    with pytest.raises(ValueError, match="max_connections"):
        render(GatewayPorts(max_connections=0))
    with pytest.raises(ValueError, match="max_heap_mib"):
        render(GatewayPorts(max_heap_mib=0))
