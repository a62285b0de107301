"""What each container of the compose mesh uses: memory at rest and after work, CPU per request.

    make images
    python -m bench.deploy_sizing [--faces ../shared/faces] [--requests 40] [--concurrency 4]

Brings compose.yaml up (podman-compose, the stand-in images, one replica of each service so
that every request's cost lands in one container), signs up, enrols one photo per identity of
the faces folder, then sends ``--requests`` detections and as many recognitions through Envoy,
``--concurrency`` at a time. Prints per service: resident memory at rest and at the end (MiB)
and CPU milliseconds per request, from podman's cumulative CPU time (``CPUNano``) before and
after each phase; then brings the mesh down. Figures feed docs/deploy.md's requests and limits.
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.deploy.helpers import (
    Compose,
    new_tenant,
    podman,
    send_image,
)
from tests.helpers.photos import shared_faces
from tests.helpers.rest_client import Reply, call
from tests.helpers.wait import wait_for_value

SERVICES = ("envoy", "api-svc", "embed-svc", "admin-svc", "triton", "postgres")


def usage(compose: Compose) -> dict[str, tuple[int, float]]:
    """Service -> (CPU nanoseconds so far, resident MiB) of replica 1."""
    names = [compose.container(service) for service in SERVICES]
    template = "{{.Name}} {{.ContainerStats.CPUNano}} {{.ContainerStats.MemUsage}}"
    rows = podman("stats", "--no-stream", "--format", template, *names).split("\n")
    by_name = {row.split()[0]: row.split()[1:] for row in rows if row.strip()}
    return {
        service: (int(by_name[name][0]), int(by_name[name][1]) / 2**20)
        for service, name in zip(SERVICES, names, strict=True)
    }


def run_phase(count: int, concurrency: int, send: Callable[[int], Reply]) -> float:
    start = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        replies = list(pool.map(send, range(count)))
    assert all(reply.status == 200 for reply in replies), [r.body for r in replies][:2]
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    faces = args.faces or shared_faces()
    port = 18000 + secrets.randbelow(1000)
    env = dict(os.environ)
    env.update(
        FACEGRID_TOKEN_SECRET=secrets.token_hex(32),
        FACEGRID_POSTGRES_PASSWORD=secrets.token_hex(16),
        FACEGRID_ENVOY_PUBLISH=f"127.0.0.1:{port}",
        FACEGRID_API_REPLICAS="1",
        FACEGRID_EMBED_REPLICAS="1",
    )
    compose = Compose(project=f"fgsize{uuid.uuid4().hex[:6]}", env=env)
    rest = f"http://127.0.0.1:{port}"
    up = compose.run("up", "-d")
    assert up.returncode == 0, up.stderr[-2000:]
    try:

        def ready() -> bool | None:
            try:
                return True if call("GET", f"{rest}/ready", timeout_s=5).status == 200 else None
            except OSError:
                return None

        wait_for_value(ready, 300, "/ready", interval_s=2)
        tenant = new_tenant(rest)
        at_rest = usage(compose)
        people = sorted(p for p in faces.iterdir() if p.is_dir() and p.name != "groups")
        photos = [sorted(p.iterdir())[0] for p in people]
        for person, photo in zip(people, photos, strict=True):
            reply = send_image(
                f"{rest}/api/v1/recognition/faces",
                tenant.recognition_key,
                photo,
                query={"subject": person.name},
            )
            assert reply.status == 201, reply.body

        def detect(i: int) -> Reply:
            photo = photos[i % len(photos)]
            return send_image(f"{rest}/api/v1/detection/detect", tenant.detection_key, photo)

        def recognize(i: int) -> Reply:
            photo = photos[i % len(photos)]
            return send_image(f"{rest}/api/v1/recognition/recognize", tenant.recognition_key, photo)

        phases = {}
        for name, send in (("detect", detect), ("recognize", recognize)):
            before = usage(compose)
            seconds = run_phase(args.requests, args.concurrency, send)
            after = usage(compose)
            phases[name] = (seconds, before, after)
        print(
            f"compose mesh, 1 replica each, {args.requests} requests per phase, "
            f"{args.concurrency} in flight, {len(photos)} enrolled faces"
        )
        print(f"machine: {os.cpu_count()} cores (shared with other work)")
        header = f"{'service':<10} {'RSS at rest':>12} {'RSS at end':>11}"
        header += "".join(f" {name + ' CPU ms/req':>22}" for name in phases)
        print(header)
        end = usage(compose)
        for service in SERVICES:
            line = f"{service:<10} {at_rest[service][1]:>10.0f}Mi {end[service][1]:>9.0f}Mi"
            for _seconds, before, after in phases.values():
                cpu_ms = (after[service][0] - before[service][0]) / 1e6 / args.requests
                line += f" {cpu_ms:>22.1f}"
            print(line)
        for name, (seconds, _, _) in phases.items():
            print(f"{name}: {args.requests / seconds:.1f} requests/s through Envoy")
    finally:
        compose.run("down", "-v", "-t", "5")


if __name__ == "__main__":
    main()
