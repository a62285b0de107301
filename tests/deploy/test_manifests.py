"""The Kubernetes manifests and compose.yaml, checked offline: every manifest and rendered overlay
validates strictly against the Kubernetes schemas, probes and health names follow DESIGN.md,
every variable they set is documented, and the pieces agree with each other (Envoy's upstream
names with the Services, image defaults of compose and manifests, selectors, GPU placement)."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from facegrid.config import METRICS_PORT_OFFSET
from gateway.deployments import DEPLOYMENTS, STATS_PORT
from gateway.render import GatewayPorts
from tests.deploy.helpers import shared_dir

REPO = Path(__file__).resolve().parents[2]
KUBE = REPO / "deploy" / "kubernetes"
TOOLS = REPO / ".venv-deploy" / "bin"
OVERLAYS = ("cpu", "gpu", "try")
#: Oldest Kubernetes with GA gRPC probes, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
#: The services' gRPC ports (node 0) and the manifests naming them.
SERVICE_PORTS = {"api-svc": 50051, "embed-svc": 50052, "admin-svc": 50053}
#: The console's static file server: its HTTP port (Envoy's upstream) and health path.
CONSOLE_PORT = GatewayPorts().console_port
CONSOLE_HEALTH_PATH = "/healthz"
#: Variables the PostgreSQL image defines for itself (its own documentation, not ours).
POSTGRES_IMAGE_VARIABLES = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}


@cache
def rendered(overlay: str) -> str:
    result = subprocess.run(
        [sys.executable, str(KUBE / "render.py"), overlay, "--kubectl", str(TOOLS / "kubectl")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin"},  # no FACEGRID_*_IMAGE: the defaults
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def objects(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered(overlay)) if doc]


def find(overlay: str, kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects(overlay) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name} in {overlay}: {len(matches)}"
    return matches[0]


def containers(overlay: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) of every Deployment and StatefulSet."""
    for obj in objects(overlay):
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                yield obj, container


def validate(paths: list[Path], version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(TOOLS / "kubernetes-validate"),
            "--strict",
            "--quiet",
            "-k",
            version,
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def manifest_files() -> list[Path]:
    """Every plain manifest: the resources of each kustomization, and the Secret example."""
    files = [KUBE / "secret.example.yaml"]
    for kustomization in sorted(KUBE.rglob("kustomization.yaml")):
        for resource in yaml.safe_load(kustomization.read_text()).get("resources", []):
            path = kustomization.parent / resource
            if path.is_file():
                files.append(path)
    return files


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_overlays_validate_strictly(version: str, tmp_path: Path) -> None:
    paths = []
    for overlay in OVERLAYS:
        paths.append(tmp_path / f"{overlay}.yaml")
        paths[-1].write_text(rendered(overlay))
    result = validate(paths, version)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_file_validates_strictly(version: str) -> None:
    files = manifest_files()
    assert len(files) >= 9
    result = validate(files, version)
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    deployment = find("cpu", "Deployment", "api-svc")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deployment))
    result = validate([path], KUBERNETES_VERSIONS[-1])
    assert result.returncode != 0 and "livenessProbes" in result.stdout + result.stderr


def design_health_names() -> tuple[str, str]:
    """(liveness, readiness) health service names, as DESIGN.md's health section gives them."""
    text = (shared_dir() / "DESIGN.md").read_text()
    section = text[text.index("## Health, readiness") :]
    section = section[: section.index("\n## ")]
    names = re.findall(r"gRPC health, service name `([^`]*)`", section)
    assert len(names) == 2, names
    liveness, readiness = names[0].strip('"'), names[1]
    assert f"readiness probes use it; liveness probes use `{names[0]}`" in section
    return liveness, readiness


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_use_the_health_names_of_the_design(overlay: str) -> None:
    liveness_name, readiness_name = design_health_names()
    assert (liveness_name, readiness_name) == ("", "facegrid.ready")
    for name, port in SERVICE_PORTS.items():
        container = find(overlay, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert container["ports"] == [
            {"name": "grpc", "containerPort": port},
            {"name": "metrics", "containerPort": port + METRICS_PORT_OFFSET},
        ]
        liveness = container["livenessProbe"]["grpc"]
        readiness = container["readinessProbe"]["grpc"]
        assert liveness["port"] == port and liveness.get("service", "") == liveness_name
        assert readiness == {"port": port, "service": readiness_name}
        if "startupProbe" in container:
            assert container["startupProbe"]["grpc"] == readiness


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_is_probed_on_its_health_path_and_port(overlay: str) -> None:
    """The console's server answers ``/healthz`` on FACEGRID_CONSOLE_PORT (README default, the
    port Envoy's config sends every non-API path to, and the one the manifest sets)."""
    readme = (REPO / "README.md").read_text()
    assert re.search(rf"`FACEGRID_CONSOLE_PORT` \| {CONSOLE_PORT} \|", readme)
    container = find(overlay, "Deployment", "console")["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": CONSOLE_PORT}]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["FACEGRID_CONSOLE_PORT"] == str(CONSOLE_PORT)
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": CONSOLE_HEALTH_PATH, "port": "http"}
    service = find(overlay, "Service", "console")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": CONSOLE_PORT, "targetPort": "http", "appProtocol": "http"}
    ]
    assert service["spec"]["selector"].items() <= (
        find(overlay, "Deployment", "console")["spec"]["template"]["metadata"]["labels"].items()
    )


def test_envoy_sends_the_console_paths_to_the_console_service() -> None:
    config_path, ports = DEPLOYMENTS["kubernetes"]
    assert ports.dns is not None and ports.dns.console == "console"
    config = yaml.safe_load(config_path.read_text())
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "console")
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {
        "address": "console",
        "port_value": CONSOLE_PORT,
    }
    # Headless: each ready pod is one of Envoy's upstreams (STRICT_DNS).
    assert cluster["type"] == "STRICT_DNS"
    assert find("cpu", "Service", "console")["spec"]["clusterIP"] == "None"


def test_service_ports_are_the_design_ones() -> None:
    design = (shared_dir() / "DESIGN.md").read_text()
    assert "api_svc 50051" in design and "embed_svc 50052" in design
    readme = (REPO / "README.md").read_text()
    assert re.search(r"`FACEGRID_ADMIN_PORT`[^\n]*50053", readme)


def readme_variables() -> set[str]:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    table = table[: table.index("\n## ", 3)]
    return set(re.findall(r"`(FACEGRID_[A-Z0-9_]+)`", table))


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def compose_variables() -> set[str]:
    names = set()
    for service in compose()["services"].values():
        names |= set(service.get("environment", {}))
    return names


def manifest_variables() -> set[str]:
    names = set()
    for overlay in OVERLAYS:
        names |= set(find(overlay, "ConfigMap", "facegrid-env")["data"])
        for _, container in containers(overlay):
            names |= {item["name"] for item in container.get("env", [])}
        for obj in objects(overlay):
            if obj["kind"] == "Secret":
                names |= set(obj.get("data", {}))
    return names


def image_variables() -> set[str]:
    """Variables the Containerfiles set with ENV (the images' defaults)."""
    names = set()
    for path in (REPO / "deploy" / "images").glob("*Containerfile"):
        for instruction in re.findall(r"^ENV (.*?)(?<!\\)$", path.read_text(), re.M | re.S):
            names |= set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", instruction))
    return names


def test_every_variable_set_by_compose_manifests_and_images_is_documented_in_the_readme() -> None:
    assert {"FACEGRID_CONSOLE_PORT", "FACEGRID_API_PORT"} <= manifest_variables()
    assert "FACEGRID_CONSOLE_PORT" in compose_variables()
    assert {"FACEGRID_CONSOLE_HOST", "FACEGRID_API_HOST"} <= image_variables()
    documented = readme_variables()
    for source, names in (
        ("compose.yaml", compose_variables()),
        ("manifests", manifest_variables()),
        ("images", {n for n in image_variables() if n.startswith("FACEGRID_")}),
    ):
        ours = {n for n in names if n.startswith("FACEGRID_")}
        assert ours, source
        assert names - ours <= POSTGRES_IMAGE_VARIABLES, source
        assert ours <= documented, f"{source} sets undocumented {sorted(ours - documented)}"


def test_every_compose_variable_is_documented_in_the_deploy_guide() -> None:
    text = (REPO / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert {"FACEGRID_TOKEN_SECRET", "FACEGRID_IMAGE", "FACEGRID_API_REPLICAS"} <= used
    guide = (REPO / "docs" / "deploy.md").read_text()
    missing = sorted(name for name in used if f"`{name}`" not in guide)
    assert not missing, f"docs/deploy.md does not document {missing}"


def test_compose_keeps_secrets_out_of_the_file() -> None:
    text = (REPO / "compose.yaml").read_text()
    assert "${FACEGRID_TOKEN_SECRET:?" in text and "${FACEGRID_POSTGRES_PASSWORD:?" in text
    for service in compose()["services"].values():
        for key, value in service.get("environment", {}).items():
            if "SECRET" in key or "PASSWORD" in key:
                assert str(value).startswith("${"), key


def test_image_defaults_of_compose_and_manifests_agree() -> None:
    image_variables = runpy.run_path(str(KUBE / "render.py"))["IMAGE_VARIABLES"]
    defaults = dict(
        re.findall(r"\$\{(FACEGRID_[A-Z_]*IMAGE):-([^}]+)\}", (REPO / "compose.yaml").read_text())
    )
    assert set(defaults) == set(image_variables.values())
    for overlay in OVERLAYS:
        for _, container in containers(overlay):
            image = container["image"]
            name = image.rsplit(":", 1)[0]
            assert name in image_variables, image
            assert defaults[image_variables[name]] == image


def test_envoy_reaches_the_headless_services_and_reads_the_config_map() -> None:
    config_path, ports = DEPLOYMENTS["kubernetes"]
    assert ports.dns is not None
    for name, port in (
        (ports.dns.api, ports.api_port),
        (ports.dns.embed, ports.embed_port),
        (ports.dns.admin, ports.admin_svc_port),
    ):
        service = find("cpu", "Service", name)
        assert service["spec"]["clusterIP"] == "None"
        assert [p["port"] for p in service["spec"]["ports"]] == [port]
    config_map = next(
        o
        for o in objects("cpu")
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("envoy-config")
    )
    assert config_map["data"]["envoy.yaml"] == config_path.read_text()
    assert "descriptor.pb" in config_map["binaryData"]
    volumes = find("cpu", "Deployment", "envoy")["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["configMap"]["name"] == config_map["metadata"]["name"]


def test_clients_balance_over_the_headless_embed_service() -> None:
    data = find("cpu", "ConfigMap", "facegrid-env")["data"]
    assert data["FACEGRID_EMBED_URL"] == "dns:///embed-svc-headless:50052"
    assert float(data["FACEGRID_GRPC_MAX_CONNECTION_AGE_S"]) > 0
    assert find("cpu", "Service", "embed-svc-headless")["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_and_disruption_budgets_select_their_deployments(overlay: str) -> None:
    deployments = {o["metadata"]["name"]: o for o in objects(overlay) if o["kind"] == "Deployment"}
    scaled = {
        o["spec"]["scaleTargetRef"]["name"]
        for o in objects(overlay)
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    assert scaled == {"api-svc", "embed-svc"}
    budgets = [o for o in objects(overlay) if o["kind"] == "PodDisruptionBudget"]
    assert {b["metadata"]["name"] for b in budgets} >= set(SERVICE_PORTS) | {"envoy", "console"}
    for budget in budgets:
        labels = deployments[budget["metadata"]["name"]]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_triton_runs_on_a_gpu_node_only_in_the_gpu_overlay() -> None:
    gpu = find("gpu", "Deployment", "triton")["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu[
        "tolerations"
    ]
    assert gpu["containers"][0]["image"] == "localhost/facegrid-triton-gpu:latest"
    cpu = find("cpu", "Deployment", "triton")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in cpu["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in cpu and cpu["containers"][0]["image"].endswith("triton-cpu:latest")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_envoy_is_reachable_from_outside(overlay: str) -> None:
    policies = [o for o in objects(overlay) if o["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert len(deny) == 1 and "ingress" not in deny[0]["spec"]
    open_to_all = [
        p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for p in policies
        if p["spec"]["podSelector"] and any("from" not in rule for rule in p["spec"]["ingress"])
    ]
    assert open_to_all == ["envoy"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_ports_open_only_to_labelled_scrapers(overlay: str) -> None:
    policy = find(overlay, "NetworkPolicy", "metrics-from-scrapers")["spec"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {},
            "podSelector": {"matchLabels": {"facegrid.io/scrape-metrics": "true"}},
        }
    ]
    opened = {port["port"] for port in rule["ports"]}
    declared = set()
    for _, container in containers(overlay):
        declared |= {
            p["containerPort"] for p in container.get("ports", []) if p["name"] == "metrics"
        }
    services = {port + METRICS_PORT_OFFSET for port in SERVICE_PORTS.values()}
    assert opened == declared == services | {8002, STATS_PORT}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_as_non_root_with_limits(overlay: str) -> None:
    for workload, container in containers(overlay):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]


def test_the_in_cluster_postgres_is_marked_for_trying_it_out_only() -> None:
    postgres = find("try", "StatefulSet", "postgres")
    assert postgres["metadata"]["annotations"]["facegrid.io/purpose"] == "for trying it out only"
    assert all(o["kind"] != "StatefulSet" for o in objects("cpu") + objects("gpu"))
    assert all(o["kind"] != "Secret" for o in objects("cpu") + objects("gpu"))
