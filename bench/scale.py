"""Recognition at scale through the real mesh: latency and faces/s at growing collections, the
cold start of a node under a large collection, and the sync lag between two api_svc nodes.

    python -m bench.scale --data /work/data/celeba [--sizes 10000,100000,1000000]
        [--requests 2000] [--probes 500]

Starts the launcher's mesh (2 api_svc nodes, 1 embed_svc on Triton, Envoy) on free ports in a
scratch directory, and fills the demo RECOGNITION collection with CelebA embeddings (the
service's default pipeline, ``bench/celeba.py``) padded to each size with perturbed copies at
the measured within-identity spread, written straight into PostgreSQL with COPY (one statement
per 50,000 rows: the nodes apply them from split notifications), then VACUUM ANALYZE and a
CHECKPOINT (the insert's aftermath, not the serving's). Per size, once both nodes report
(NodeService) every face indexed and no rebuild or file write running:

- ``--interleave N`` instead: a second collection of the first N faces, and RecognizeFaces
  into the two in turn, request by request (both see the same load), faces/s by Little's law;
- recognise: ``--requests`` RecognizeFaces through Envoy (gRPC) with held-out CelebA photos of
  enrolled people, 1 and 8 in flight: p50/p99 latency and faces/s; DetectFaces with the
  calculator plugin (the same embed_svc work without the search) once as the baseline, so
  ``search share = (recognise p50 - detect p50) / recognise p50``;
- after the largest size, cold start: a new api_svc process with ``FACEGRID_INDEX_LOAD=start``
  (seconds from its start to the first correct answer, to the approximate index; RSS against
  the vectors' bytes), and one loading on first use; both first from an index file that a
  priming node wrote (``FACEGRID_INDEX_CACHE_DIR``), then without one (from PostgreSQL);
  ``--requests 0`` skips the recognise points;
- then the sync lag: ``--probes`` enrolments of a new vector through node A (BulkAddFaces, one
  precomputed embedding each), each timed until node B answers it as the nearest face, while two
  other streams enrol continuously through both nodes.

Prints ratios measured in the same run; the machine is shared with other jobs (load average
printed), so absolute figures are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import numpy as np
import psutil
from google.api import httpbody_pb2

from bench.bulk import CALCULATOR, Mesh, _free_port, mesh_running
from bench.celeba import load, padded, split
from facegrid.recognition.v1 import node_service_pb2 as node_pb
from facegrid.recognition.v1 import node_service_pb2_grpc as node_grpc
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parents[1]
OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]
CHUNK = 50_000


def key(mesh: Mesh) -> tuple[tuple[str, str]]:
    return (("x-api-key", mesh.key),)


def status_address(api: str) -> str:
    host, port = api.rsplit(":", 1)
    return f"{host}:{int(port) + 2000}"


async def fill(
    conn: asyncpg.Connection, service_id: uuid.UUID, vectors: np.ndarray, labels: np.ndarray
) -> None:
    """Writes the rows with COPY, one statement per CHUNK rows."""
    people = {int(p) for p in np.unique(labels)}
    await conn.execute(
        "INSERT INTO subjects (service_id, name) SELECT $1, 'person-' || p"
        " FROM unnest($2::int[]) p ON CONFLICT DO NOTHING",
        service_id,
        sorted(people),
    )
    rows = await conn.fetch("SELECT id, name FROM subjects WHERE service_id = $1", service_id)
    subject = {r["name"]: r["id"] for r in rows}
    for start in range(0, len(vectors), CHUNK):
        block = vectors[start : start + CHUNK].astype("<f4")
        records = [
            (
                uuid.uuid4(),
                service_id,
                subject[f"person-{int(p)}"],
                v.tobytes(),
                128,
                CALCULATOR,
                "",
            )
            for v, p in zip(block, labels[start : start + CHUNK], strict=True)
        ]
        await conn.copy_records_to_table(
            "face_examples",
            records=records,
            columns=[
                "id",
                "service_id",
                "subject_id",
                "embedding",
                "embedding_dim",
                "calculator",
                "calculator_version",
            ],
        )


async def node_status(api: str) -> node_pb.GetNodeStatusResponse:
    async with grpc.aio.insecure_channel(status_address(api)) as channel:
        return await node_grpc.NodeServiceStub(channel).GetNodeStatus(
            node_pb.GetNodeStatusRequest()
        )


async def settled(mesh: Mesh, nodes: list[str], size: int, probe: list[float]) -> None:
    """Waits until every node has the collection loaded with ``size`` faces, nothing running."""
    deadline = time.monotonic() + 1800
    for node in nodes:
        async with grpc.aio.insecure_channel(node, options=OPTIONS) as channel:
            stub = pb_grpc.RecognitionServiceStub(channel)
            request = pb.RecognizeEmbeddingsRequest()
            request.embeddings.add().extend(probe)
            while True:
                try:
                    await stub.RecognizeEmbeddings(request, metadata=key(mesh), timeout=600)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(1)
        while True:
            status = await node_status(node)
            done = [
                c
                for c in status.collections
                if c.faces == size
                and not c.rebuilding
                and (c.kind == node_pb.INDEX_KIND_IVF) == (size >= 20_000)
            ]
            if done:
                print(
                    f"  {status.node}: {done[0].faces} faces, {done[0].detail}, "
                    f"{done[0].bytes / 2**20:.0f} MiB",
                    flush=True,
                )
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node} never settled: {status}")
            await asyncio.sleep(1)


Send = Callable[[httpbody_pb2.HttpBody], Awaitable[Any]]


async def load_test(
    send: Send, photos: list[bytes], count: int, in_flight: int
) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, faces/s) of ``count`` requests, ``in_flight`` at a time."""
    latencies: list[float] = []
    faces = 0
    order = iter(range(count))

    async def worker() -> None:
        nonlocal faces
        for i in order:
            image = httpbody_pb2.HttpBody(content_type="image/jpeg", data=photos[i % len(photos)])
            started = time.perf_counter()
            reply = await send(image)
            latencies.append((time.perf_counter() - started) * 1000)
            faces += len(reply.result)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    return (
        float(np.percentile(latencies, 50)),
        float(np.percentile(latencies, 99)),
        faces / elapsed,
    )


def demo_key(mesh: Mesh, service_type: str) -> tuple[tuple[str, str]]:
    """The demo key of a service type, from admin_svc's first-start log."""
    log = (mesh.data_dir / "logs" / "admin_svc.log").read_text()
    found = re.search(rf"^\s+{service_type}\s+\S+\s+(\S+)$", log, re.M)
    assert found is not None, f"no demo {service_type} key in admin_svc's log"
    return (("x-api-key", found.group(1)),)


def sender(stub: pb_grpc.RecognitionServiceStub, mesh: Mesh, detect: bool) -> Send:
    """RecognizeFaces (RECOGNITION key), or DetectFaces with the calculator plugin (DETECTION
    key): the same embed_svc work without the search."""
    if detect:
        detection = demo_key(mesh, "DETECTION")
        return lambda image: stub.DetectFaces(
            pb.DetectFacesRequest(image=image, face_plugins="calculator"),
            metadata=detection,
            timeout=120,
        )
    return lambda image: stub.RecognizeFaces(
        pb.RecognizeFacesRequest(image=image), metadata=key(mesh), timeout=120
    )


async def measure(
    args: argparse.Namespace, mesh: Mesh, photos: list[bytes], detect: bool, label: str
) -> dict[str, tuple[float, float, float]]:
    """1 and 8 in flight through Envoy."""
    results = {}
    async with grpc.aio.insecure_channel(mesh.envoy, options=OPTIONS) as channel:
        send = sender(pb_grpc.RecognitionServiceStub(channel), mesh, detect)
        await load_test(send, photos, 20, 2)  # warm up
        for in_flight in (1, 8):
            p50, p99, rate = await load_test(send, photos, args.requests, in_flight)
            results[str(in_flight)] = (p50, p99, rate)
            print(
                f"  {label}, {in_flight} in flight: p50 {p50:.1f} ms, p99 {p99:.1f} ms,"
                f" {rate:.1f} faces/s (load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    return results


async def second_collection(conn: asyncpg.Connection, service_id: uuid.UUID) -> str:
    """A new RECOGNITION collection like ``service_id`` (same application and calculator);
    returns its API key."""
    api_key = uuid.uuid4()
    await conn.execute(
        "INSERT INTO services (id, application_id, name, type, api_key, calculator)"
        " SELECT $1, application_id, 'bench small', type, $2, calculator FROM services"
        " WHERE id = $3",
        uuid.uuid4(),
        api_key,
        service_id,
    )
    return str(api_key)


async def interleaved(
    args: argparse.Namespace, mesh: Mesh, photos: list[bytes], keys: dict[str, str]
) -> None:
    """RecognizeFaces through Envoy into each collection of ``keys`` (label -> API key) in
    turn, request by request, so that both see the same load on a shared machine. Faces/s per
    collection by Little's law: in flight / mean latency."""
    async with grpc.aio.insecure_channel(mesh.envoy, options=OPTIONS) as channel:
        stub = pb_grpc.RecognitionServiceStub(channel)
        labels = list(keys)

        async def run(count: int, in_flight: int) -> dict[str, list[tuple[float, int]]]:
            done: dict[str, list[tuple[float, int]]] = {label: [] for label in labels}
            order = iter(range(count * len(labels)))

            async def worker() -> None:
                for i in order:
                    label = labels[i % len(labels)]
                    image = httpbody_pb2.HttpBody(
                        content_type="image/jpeg", data=photos[(i // len(labels)) % len(photos)]
                    )
                    started = time.perf_counter()
                    reply = await stub.RecognizeFaces(
                        pb.RecognizeFacesRequest(image=image),
                        metadata=(("x-api-key", keys[label]),),
                        timeout=120,
                    )
                    ms = (time.perf_counter() - started) * 1000
                    done[label].append((ms, len(reply.result)))

            await asyncio.gather(*(worker() for _ in range(in_flight)))
            return done

        await run(20, 2)  # warm up (the small collection loads on first use)
        for in_flight in (1, 8):
            done = await run(args.requests, in_flight)
            figures = {}
            for label in labels:
                ms = np.array([m for m, _ in done[label]])
                faces = sum(f for _, f in done[label])
                rate = in_flight * faces / len(ms) / (ms.mean() / 1000)
                figures[label] = (np.percentile(ms, 50), np.percentile(ms, 99), rate)
                print(
                    f"  interleaved, {label}, {in_flight} in flight: p50 "
                    f"{figures[label][0]:.1f} ms, p99 {figures[label][1]:.1f} ms, {rate:.1f} "
                    f"faces/s (load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
            small, large = figures[labels[0]], figures[labels[1]]
            print(
                f"  interleaved, {in_flight} in flight: p99 {labels[1]} / {labels[0]} = "
                f"{large[1] / small[1]:.2f} (goal <= 1.2); faces/s {large[2] / small[2]:.2f} "
                f"(goal >= 0.9)",
                flush=True,
            )


def cold_env(mesh: Mesh, port: int, mode: str, cache: Path | None) -> dict[str, str]:
    """A third api_svc node's environment: loading ``mode``, index files in ``cache``."""
    env = dict(os.environ)
    env.update(
        FACEGRID_API_PORT=str(port),
        FACEGRID_API_STATUS_PORT="0" if mode == "first_use" else str(_free_port()),
        FACEGRID_DATABASE_URL=mesh.database_url,
        FACEGRID_EMBED_URL=mesh.embed,
        FACEGRID_INDEX_LOAD=mode,
        FACEGRID_INDEX_CACHE_DIR=str(cache) if cache else "",
        FACEGRID_LOG_FORMAT="json",
    )
    return env


async def write_index_file(mesh: Mesh, work: Path, cache: Path) -> None:
    """Runs a node with ``cache`` until it has written the collection's index file."""
    log_path = work / "api_svc-cold-prime.log"
    started = time.perf_counter()
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api_svc"],
            cwd=REPO,
            env=cold_env(mesh, _free_port(), "start", cache),
            stdout=out,
            stderr=out,
        )
    try:
        while '"index_persisted"' not in log_path.read_text():
            if time.perf_counter() - started > 900 or process.poll() is not None:
                raise RuntimeError("the priming node wrote no index file")
            await asyncio.sleep(0.5)
        print(
            f"  index file written {time.perf_counter() - started:.1f} s after the priming node "
            f"started: {sum(f.stat().st_size for f in cache.iterdir()) / 2**20:.0f} MiB",
            flush=True,
        )
    finally:
        process.terminate()
        process.wait(timeout=120)


async def cold_start(
    mesh: Mesh,
    work: Path,
    size: int,
    probe: tuple[str, list[float]],
    mode: str,
    cache: Path | None = None,
) -> None:
    port = _free_port()
    env = cold_env(mesh, port, mode, cache)
    label = f"{mode}{', index file' if cache else ''}"
    log_path = work / f"api_svc-cold-{mode}{'-file' if cache else ''}.log"
    started = time.perf_counter()
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api_svc"], cwd=REPO, env=env, stdout=out, stderr=out
        )
    proc = psutil.Process(process.pid)
    node = f"127.0.0.1:{port}"
    request = pb.RecognizeEmbeddingsRequest()
    request.embeddings.add().extend(probe[1])
    peak = 0.0
    served_at = rss_served = None
    try:
        async with grpc.aio.insecure_channel(node, options=OPTIONS) as channel:
            stub = pb_grpc.RecognitionServiceStub(channel)
            while served_at is None:
                peak = max(peak, proc.memory_info().rss)
                try:
                    reply = await stub.RecognizeEmbeddings(request, metadata=key(mesh), timeout=120)
                    if reply.result[0].similarities[0].subject == probe[0]:
                        served_at = time.perf_counter() - started
                        rss_served = proc.memory_info().rss
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.1)
                if time.perf_counter() - started > 600:
                    raise RuntimeError("the restarted node never answered")
            ivf_at = None
            while ivf_at is None and time.perf_counter() - started < 900:
                peak = max(peak, proc.memory_info().rss)
                # The status port of a first_use node is not known (0): watch its log instead.
                text = log_path.read_text()
                if '"index_retrained"' in text or '"kind": "ivf"' in text:
                    ivf_at = time.perf_counter() - started
                await asyncio.sleep(0.2)
        settled_rss = proc.memory_info().rss
        vectors = size * 128 * 4
        print(
            f"  cold start ({label}): first correct answer {served_at:.1f} s after the process"
            f" started (RSS {(rss_served or 0) / 2**20:.0f} MiB), approximate index in at "
            f"{ivf_at or float('nan'):.1f} s; RSS then {settled_rss / 2**20:.0f} MiB = "
            f"{settled_rss / vectors:.2f}x the vectors' {vectors / 2**20:.0f} MiB (peak "
            f"{peak / 2**20:.0f} MiB)",
            flush=True,
        )
    finally:
        process.terminate()
        process.wait(timeout=60)


async def sync_lag(args: argparse.Namespace, mesh: Mesh, nodes: list[str]) -> None:
    a, b = nodes
    rng = np.random.default_rng(99)
    stop = asyncio.Event()

    def unit() -> list[float]:
        v = rng.normal(size=128)
        return (v / np.linalg.norm(v)).tolist()

    async def background(node: str, name: str) -> int:
        done = 0
        async with grpc.aio.insecure_channel(node, options=OPTIONS) as channel:
            stub = pb_grpc.RecognitionServiceStub(channel)
            while not stop.is_set():
                items = [
                    pb.BulkAddFacesRequest(
                        subject=f"{name}-{done}-{i}",
                        embedding=pb.PrecomputedEmbedding(values=unit(), calculator=CALCULATOR),
                    )
                    for i in range(10)
                ]
                async for _ in stub.BulkAddFaces(iter(items), metadata=key(mesh), timeout=120):
                    pass
                done += len(items)
                await asyncio.sleep(0.05)
        return done

    lags: list[float] = []
    # Where the lag goes: when a listener of the bench's own sees each change's notification.
    heard: dict[str, float] = {}
    listener = await asyncpg.connect(mesh.database_url)

    # Which changes carried their rows in the payload (migration 0004): B applies those unfetched.
    carried: set[str] = set()

    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        now = time.perf_counter()
        data = json.loads(payload)
        for image_id in data.get("ids") or ():
            heard.setdefault(image_id, now)
        carried.update(row["id"] for row in data.get("rows") or ())

    await listener.add_listener("facegrid_changes", on_notify)
    to_notice: list[float] = []
    probes_carried = 0
    writers = [asyncio.create_task(background(n, f"bg{i}")) for i, n in enumerate(nodes)]
    async with (
        grpc.aio.insecure_channel(a, options=OPTIONS) as ca,
        grpc.aio.insecure_channel(b, options=OPTIONS) as cb,
    ):
        sa, sb = pb_grpc.RecognitionServiceStub(ca), pb_grpc.RecognitionServiceStub(cb)
        for i in range(args.probes):
            vector = unit()
            name = f"probe-{i}"
            item = pb.BulkAddFacesRequest(
                subject=name,
                embedding=pb.PrecomputedEmbedding(values=vector, calculator=CALCULATOR),
            )
            image_id = ""
            async for reply in sa.BulkAddFaces(iter([item]), metadata=key(mesh), timeout=60):
                assert reply.image_id, reply
                image_id = reply.image_id
            enrolled = time.perf_counter()
            request = pb.RecognizeEmbeddingsRequest()
            request.embeddings.add().extend(vector)
            while True:
                reply = await sb.RecognizeEmbeddings(request, metadata=key(mesh), timeout=60)
                found = reply.result[0].similarities
                if found and found[0].subject == name:
                    lags.append((time.perf_counter() - enrolled) * 1000)
                    probes_carried += image_id in carried
                    if image_id in heard:
                        to_notice.append((heard.pop(image_id) - enrolled) * 1000)
                    break
                if time.perf_counter() - enrolled > 30:
                    raise RuntimeError(f"node B never found {name}")
    stop.set()
    written = sum(await asyncio.gather(*writers))
    await listener.close()
    print(
        f"  sync lag over {len(lags)} enrolments (while {written} others were enrolled through "
        f"both nodes): p50 {statistics.median(lags):.1f} ms, p99 "
        f"{np.percentile(lags, 99):.1f} ms, max {max(lags):.1f} ms, mean "
        f"{statistics.fmean(lags):.1f} ms; {probes_carried} probes' notifications carried "
        "their rows",
        flush=True,
    )
    if to_notice:
        print(
            f"  the bench's own listener heard the notification (after the reply to A, negative: "
            f"before it) p50 {statistics.median(to_notice):.1f} ms, p99 "
            f"{np.percentile(to_notice, 99):.1f} ms ({len(to_notice)} of the enrolments)",
            flush=True,
        )


async def main_async(args: argparse.Namespace, work: Path) -> None:
    faces = load(args.data)
    chosen = split(faces)
    files = faces.files[chosen.queries]
    photos = [(args.data / "Celeb" / str(f)).read_bytes() for f in files]
    sizes = [int(s) for s in args.sizes.split(",")]
    vectors, labels = padded(faces, chosen, max(sizes))
    probe = (f"person-{int(labels[0])}", vectors[0].tolist())
    print(
        f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, load "
        f"average {os.getloadavg()[0]:.1f} (shared with other jobs); {len(photos)} held-out "
        f"CelebA photos as queries; collection padded from {len(chosen.enrolled)} real "
        f"embeddings at spread {chosen.spread:.3f}",
        flush=True,
    )
    with mesh_running(
        work, {"FACEGRID_API_NODES": "2", "FACEGRID_API_DB_TIMEOUT_S": "120"}
    ) as mesh:
        host, port = mesh.api.rsplit(":", 1)
        nodes = [mesh.api, f"{host}:{int(port) + 100}"]
        conn = await asyncpg.connect(mesh.database_url)
        service_id = await conn.fetchval(
            "SELECT id FROM services WHERE api_key = $1", uuid.UUID(mesh.key)
        )
        measuring = args.requests > 0 and not args.interleave
        detect = (
            await measure(args, mesh, photos, True, "detect + embed (no search)")
            if measuring
            else {}
        )
        recognise: dict[int, dict[str, tuple[float, float, float]]] = {}
        filled = 0
        for size in sizes:
            await fill(conn, service_id, vectors[filled:size], labels[filled:size])
            filled = size
            # The bulk insert's own aftermath (autovacuum, dirty pages) done before measuring.
            await conn.execute("VACUUM (ANALYZE) face_examples", timeout=1800)
            await conn.execute("CHECKPOINT", timeout=600)
            await settled(mesh, nodes, size, probe[1])
            if measuring:
                recognise[size] = await measure(args, mesh, photos, False, f"recognise at {size:,}")
        small, large = sizes[0], sizes[-1]
        if args.interleave and args.requests:
            other = await second_collection(conn, service_id)
            other_id = await conn.fetchval(
                "SELECT id FROM services WHERE api_key = $1", uuid.UUID(other)
            )
            await fill(conn, other_id, vectors[: args.interleave], labels[: args.interleave])
            await conn.execute("VACUUM (ANALYZE) face_examples", timeout=1800)
            await conn.execute("CHECKPOINT", timeout=600)
            keys = {f"{args.interleave:,} faces": other, f"{large:,} faces": mesh.key}
            await interleaved(args, mesh, photos, keys)
        for flight in ("1", "8") if measuring else ():
            for size in sizes:
                rec, det = recognise[size][flight], detect[flight]
                print(
                    f"  {flight} in flight, {size:,} faces: search share "
                    f"{max(0.0, rec[0] - det[0]) / rec[0]:.2f}; faces/s / detect+embed's "
                    f"{rec[2] / det[2]:.2f}"
                )
            p99 = recognise[large][flight][1] / recognise[small][flight][1]
            rate = recognise[large][flight][2] / recognise[small][flight][2]
            print(
                f"  {flight} in flight: p99 at {large:,} / at {small:,} = {p99:.2f} (goal <= 1.2);"
                f" faces/s {large:,} / {small:,} = {rate:.2f} (goal >= 0.9)",
                flush=True,
            )
        cache = work / "cold-index"
        for mode in ("start", "first_use") if not args.skip_cold else ():
            if not cache.exists():
                await write_index_file(mesh, work, cache)
            await cold_start(mesh, work, large, probe, mode, cache)
        for mode in ("start", "first_use") if not args.skip_cold else ():
            await cold_start(mesh, work, large, probe, mode)
        await sync_lag(args, mesh, nodes)
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="CelebA folder")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--requests", type=int, default=2000, help="0: no recognise points")
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--skip-cold", action="store_true", help="no cold start measurements")
    parser.add_argument(
        "--interleave",
        type=int,
        default=0,
        help="N: a second collection of N faces, measured request by request in turn with the "
        "largest size (instead of one size after the other)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fgs-", dir="/tmp"))
    work.chmod(0o755)
    try:
        asyncio.run(main_async(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
