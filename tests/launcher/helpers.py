"""Helpers of the whole-mesh tests: a mesh started by the real launcher (``running_mesh``: one
node of each service by default, or several api_svc and embed_svc nodes), its addresses, REST
calls with the demo keys, and reading the mesh's database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil

from gateway.render import node_ports
from launcher.readiness import http_ok
from tests.helpers.ports import mesh_port_env
from tests.helpers.rest_client import Reply, call
from tests.helpers.wait import wait_for_process, wait_until

REPO = Path(__file__).resolve().parents[2]
FACES = "/api/v1/recognition/faces"
SUBJECTS = "/api/v1/recognition/subjects"
#: The face-api demo photo with five faces.
GROUP = "sample5.jpg"


@dataclass(frozen=True)
class MeshHandle:
    """Addresses of a running mesh."""

    rest: str
    """Envoy base URL."""
    envoy_grpc: str
    """Envoy host:port for gRPC clients."""
    api: str
    """api_svc node 0's host:port (direct)."""
    embed: str
    """embed_svc node 0's host:port (direct, internal)."""
    admin: str
    """admin_svc host:port (direct)."""
    triton_http: str
    """Triton HTTP base URL."""
    triton_metrics: str
    """Triton's Prometheus metrics URL."""
    envoy_admin: str
    """Envoy's admin base URL (its stats: /stats/prometheus)."""
    data_dir: Path
    """The mesh's data directory (logs under logs/)."""
    launcher_log: Path
    """The launcher's own output."""
    api_nodes: tuple[str, ...] = ()
    """host:port of every api_svc node (node i on the base port + 100 * i)."""
    embed_nodes: tuple[str, ...] = ()
    """host:port of every embed_svc node."""

    def launcher_events(self) -> list[dict[str, object]]:
        """The launcher's JSON log events so far."""
        events = []
        for line in self.launcher_log.read_text().splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
        return events

    def pid(self, process: str) -> int:
        """The current pid of a process of the mesh (``api_svc-1``...), from the launcher's
        events (its last start or restart)."""
        pids = [
            int(str(e["pid"]))
            for e in self.launcher_events()
            if e.get("process") == process
            and e.get("event") in ("process_started", "process_restarted")
        ]
        assert pids, f"the launcher never started {process}"
        return pids[-1]


def _children_pids(handle: MeshHandle) -> list[int]:
    return [
        int(str(e["pid"]))
        for e in handle.launcher_events()
        if e.get("event") in ("process_started", "process_restarted")
    ]


@contextmanager
def running_mesh(
    work: Path, api_nodes: int = 1, embed_nodes: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[MeshHandle]:
    """A mesh started by ``python -m launcher`` on free ports (every node's port free), its
    data under ``work``, ``extra_env`` added to its environment; stopped with SIGINT, as Ctrl-C
    would, checking that every process it ever started (restarts included) is gone."""
    ports = mesh_port_env({"FACEGRID_API_NODES": api_nodes, "FACEGRID_EMBED_NODES": embed_nodes})
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "mesh"
    env = dict(os.environ)
    env.update(ports)
    env.update(
        FACEGRID_DATA_DIR=str(data_dir),
        FACEGRID_LOGS_TO_FILES="1",
        FACEGRID_LOG_FORMAT="json",
        FACEGRID_API_NODES=str(api_nodes),
        FACEGRID_EMBED_NODES=str(embed_nodes),
        PYTHONUNBUFFERED="1",
    )
    env.pop("FACEGRID_DATABASE_URL", None)
    env.update(extra_env or {})
    launcher_log = work / "launcher.log"
    with launcher_log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "launcher"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    handle = MeshHandle(
        rest=f"http://127.0.0.1:{ports['FACEGRID_ENVOY_PORT']}",
        envoy_grpc=f"127.0.0.1:{ports['FACEGRID_ENVOY_PORT']}",
        api=f"127.0.0.1:{ports['FACEGRID_API_PORT']}",
        embed=f"127.0.0.1:{ports['FACEGRID_EMBED_PORT']}",
        admin=f"127.0.0.1:{ports['FACEGRID_ADMIN_PORT']}",
        triton_http=f"http://127.0.0.1:{ports['FACEGRID_TRITON_HTTP_PORT']}",
        triton_metrics=f"http://127.0.0.1:{ports['FACEGRID_TRITON_METRICS_PORT']}/metrics",
        envoy_admin=f"http://127.0.0.1:{ports['FACEGRID_ENVOY_ADMIN_PORT']}",
        data_dir=data_dir,
        launcher_log=launcher_log,
        api_nodes=tuple(
            f"127.0.0.1:{p}" for p in node_ports(int(ports["FACEGRID_API_PORT"]), api_nodes)
        ),
        embed_nodes=tuple(
            f"127.0.0.1:{p}" for p in node_ports(int(ports["FACEGRID_EMBED_PORT"]), embed_nodes)
        ),
    )
    try:
        try:
            wait_for_process(
                process,
                lambda: "Facegrid is up" in launcher_log.read_text(),
                300,
                "the mesh",
                launcher_log,
            )
        except AssertionError as failed:
            logs = "\n".join(
                f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (data_dir / "logs").glob("*.log")
            )
            raise AssertionError(f"{failed}\n{logs}") from None
        assert http_ok(f"{handle.rest}/ready")
        yield handle
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, launcher_log.read_text()[-3000:]
    still_running = [
        pid
        for pid in _children_pids(handle)
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert still_running == [], f"processes left running after Ctrl-C: {still_running}"


def error(reply: Reply) -> tuple[int, int]:
    """The HTTP status and CompreFace code of an error reply (which has only those fields)."""
    body = reply.json()
    assert set(body) == {"message", "code"}, body
    return reply.status, body["code"]


def rest(mesh: MeshHandle, keys: dict[str, str], method: str, path: str, **kwargs) -> Reply:
    """A REST call with the demo RECOGNITION key."""
    return call(method, mesh.rest + path, headers={"x-api-key": keys["RECOGNITION"]}, **kwargs)


def enrol(mesh: MeshHandle, keys: dict[str, str], subject: str, data: bytes) -> Reply:
    """Adds ``data`` as a face of ``subject`` in the demo recognition collection."""
    return rest(
        mesh,
        keys,
        "POST",
        FACES,
        files={"file": ("face.png", data, "image/png")},
        query={"subject": subject},
    )


def detected_embedding(mesh: MeshHandle, keys: dict[str, str], data: bytes) -> list[float]:
    """The embedding of the first face of ``data``, from the detection endpoint."""
    return call(
        "POST",
        mesh.rest + "/api/v1/detection/detect",
        headers={"x-api-key": keys["DETECTION"]},
        files={"file": ("f.png", data, "image/png")},
        query={"face_plugins": "calculator"},
    ).json()["result"][0]["embedding"]


def sql(mesh: MeshHandle, query: str, *args: object) -> list[asyncpg.Record]:
    """Runs ``query`` on the mesh's embedded PostgreSQL."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(f"postgresql://postgres:@/postgres?host={mesh.data_dir}/pg")
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def until(fetch: Callable[[], Reply], done: Callable[[dict], bool], timeout_s: float = 15) -> dict:
    """Calls ``fetch`` until its JSON satisfies ``done`` (the index has caught up); that JSON."""
    seen: list[dict] = []

    def caught_up() -> bool:
        reply = fetch()
        assert reply.status == 200, reply.body
        seen.append(reply.json())
        return done(seen[-1])

    wait_until(caught_up, timeout_s, "the index to catch up")
    return seen[-1]
