"""Envoy configurations of the container deployments, rendered from the same template.

``python -m gateway.deployments`` writes ``deploy/compose/envoy.yaml`` (upstreams are compose
services) and ``deploy/kubernetes/base/gateway/envoy.yaml`` (upstreams are headless Services),
and copies the descriptor set (``make proto``) beside the Kubernetes one, where kustomize's
ConfigMap generator reads it. Both configurations are committed; a test checks they are current.
In a container Envoy listens on every interface and reads the descriptor from /etc/envoy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.render import DnsUpstreams, GatewayPorts, render

REPO = Path(__file__).resolve().parent.parent
#: Where the descriptor set is mounted in the Envoy container.
CONTAINER_DESCRIPTOR = "/etc/envoy/descriptor.pb"

#: Deployment name -> (rendered file, Envoy's view of the mesh).
DEPLOYMENTS: dict[str, tuple[Path, GatewayPorts]] = {
    "compose": (
        REPO / "deploy" / "compose" / "envoy.yaml",
        GatewayPorts(
            host="0.0.0.0",  # noqa: S104 (inside a container)
            descriptor_path=CONTAINER_DESCRIPTOR,
            dns=DnsUpstreams(api="api-svc", embed="embed-svc", admin="admin-svc"),
        ),
    ),
    "kubernetes": (
        REPO / "deploy" / "kubernetes" / "base" / "gateway" / "envoy.yaml",
        GatewayPorts(
            host="0.0.0.0",  # noqa: S104 (inside a container)
            descriptor_path=CONTAINER_DESCRIPTOR,
            dns=DnsUpstreams(
                api="api-svc-headless", embed="embed-svc-headless", admin="admin-svc-headless"
            ),
        ),
    ),
}


def write_all(descriptor: Path = REPO / "gateway" / "descriptor.pb") -> list[Path]:
    """Renders every deployment's config and copies the descriptor; returns the files written."""
    written = []
    for path, ports in DEPLOYMENTS.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(ports))
        written.append(path)
    kube_descriptor = DEPLOYMENTS["kubernetes"][0].with_name("descriptor.pb")
    shutil.copyfile(descriptor, kube_descriptor)
    written.append(kube_descriptor)
    return written


if __name__ == "__main__":
    for written_path in write_all():
        print(written_path.relative_to(REPO))
