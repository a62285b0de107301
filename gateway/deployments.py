"""Envoy configurations of the container deployments, rendered from the same template.

``python -m gateway.deployments`` writes ``deploy/compose/envoy.yaml`` (upstreams are compose
services) and ``deploy/kubernetes/base/gateway/envoy.yaml`` (upstreams are headless Services),
and copies the descriptor set (``make proto``) beside the Kubernetes one, where kustomize's
ConfigMap generator reads it. Both configurations are committed; a test checks they are current.
In a container Envoy listens on every interface and reads the descriptor from /etc/envoy.

The committed configs take Envoy's peer as the client (sign-in throttling counts per client
address). Where a load balancer or ingress that appends ``x-forwarded-for`` stands in front of
Envoy, render them with ``--trusted-hops N`` (N proxies; FACEGRID_ENVOY_TRUSTED_HOPS of the
launcher), or every client shares that proxy's address.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

from gateway.render import DnsUpstreams, GatewayPorts, render

REPO = Path(__file__).resolve().parent.parent
#: Where the descriptor set is mounted in the Envoy container.
CONTAINER_DESCRIPTOR = "/etc/envoy/descriptor.pb"

#: Envoy's Prometheus stats (only ``/stats/prometheus``) in the containers; its admin interface
#: stays on 127.0.0.1.
STATS_PORT = 9902

#: Envoy's heap budget in Kubernetes, MiB: under the container's 256 MiB memory limit
#: (deploy/kubernetes/base/envoy.yaml) with room for what is not heap, so Envoy refuses requests
#: (503) before the kernel kills it.
KUBERNETES_HEAP_MIB = 192

#: Deployment name -> (rendered file, Envoy's view of the mesh).
DEPLOYMENTS: dict[str, tuple[Path, GatewayPorts]] = {
    "compose": (
        REPO / "deploy" / "compose" / "envoy.yaml",
        GatewayPorts(
            host="0.0.0.0",  # noqa: S104 (inside a container)
            descriptor_path=CONTAINER_DESCRIPTOR,
            stats_port=STATS_PORT,
            dns=DnsUpstreams(api="api-svc", embed="embed-svc", admin="admin-svc"),
        ),
    ),
    "kubernetes": (
        REPO / "deploy" / "kubernetes" / "base" / "gateway" / "envoy.yaml",
        GatewayPorts(
            host="0.0.0.0",  # noqa: S104 (inside a container)
            descriptor_path=CONTAINER_DESCRIPTOR,
            stats_port=STATS_PORT,
            dns=DnsUpstreams(
                api="api-svc-headless", embed="embed-svc-headless", admin="admin-svc-headless"
            ),
            max_heap_mib=KUBERNETES_HEAP_MIB,
        ),
    ),
}


def write_all(
    descriptor: Path = REPO / "gateway" / "descriptor.pb", trusted_hops: int = 0
) -> list[Path]:
    """Renders every deployment's config (``trusted_hops`` proxies in front of Envoy) and copies
    the descriptor; returns the files written."""
    written = []
    for path, ports in DEPLOYMENTS.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(dataclasses.replace(ports, trusted_hops=trusted_hops)))
        written.append(path)
    kube_descriptor = DEPLOYMENTS["kubernetes"][0].with_name("descriptor.pb")
    shutil.copyfile(descriptor, kube_descriptor)
    written.append(kube_descriptor)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trusted-hops",
        type=int,
        default=0,
        help="proxies in front of Envoy whose x-forwarded-for entries are trusted (default 0)",
    )
    args = parser.parse_args()
    for written_path in write_all(trusted_hops=args.trusted_hops):
        print(written_path.relative_to(REPO))
