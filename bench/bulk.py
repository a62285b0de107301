"""Bulk enrolment: faces/s of BulkAddFaces against one AddFace per request and the in-process
pipeline, and an import of precomputed embeddings found on two api_svc nodes.

    python -m bench.bulk images [--faces /work/shared/faces] [--seconds 15] [--rounds 3]
    python -m bench.bulk embeddings [--count 1000000] [--streams 2] [--to nodes|envoy]

Both start the real mesh (``python -m launcher``: PostgreSQL, Triton, embed_svc, admin_svc,
api_svc, Envoy) on free ports in a scratch data dir, and use the demo RECOGNITION key.

``images``: the one-face identity photos of the faces folder, cycled, at ``--in-flight`` photos in
flight, each figure over ``--seconds``, the three in turn for ``--rounds`` rounds (the machine is
shared: its load drifts, so each round's ratios are printed as well as the means):
1. the in-process pipeline: embed_svc's FaceAnalyzer on onnxruntime called directly (as
   bench/throughput.py builds it), ``--in-flight`` concurrent calls: no enrolment, no network;
2. AddFace through Envoy over gRPC, ``--in-flight`` concurrent requests;
3. BulkAddFaces through Envoy over gRPC: one stream, ``--in-flight`` photos sent ahead of their
   results.
Each enrolment empties the collection first. Ratios are printed against (1).

``embeddings``: starts a second api_svc process on a free port against the same PostgreSQL and
embed_svc, streams ``--count`` random unit 128-d vectors (dlib-resnet-v1's size) with their
calculator name in ``--streams`` BulkAddFaces streams (``--to nodes``: stream i to api_svc node
i mod 2 directly; ``--to envoy``: every stream through Envoy, which has the launcher's node
behind it), ``--subjects-per`` vectors per subject, then asks each api_svc node directly
(RecognizeEmbeddings) for a sample of the imported vectors until both find every one as its own
subject. Prints the import time, the CPU seconds each process used meanwhile, and each node's
time to answer (its first use loads the collection; api_svc's database deadline is raised to
120 s for that single query).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import psutil
from google.api import httpbody_pb2

from bench.mesh import launch
from bench.throughput import rate
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from launcher.readiness import grpc_serving

REPO = Path(__file__).resolve().parents[1]
#: api_svc's database deadline for the embeddings run: a node's first use of a collection reads
#: it in one query, which takes longer than the default 5 s at 1M rows on this machine.
LOAD_TIMEOUT_S = "120"
CALCULATOR = "dlib-resnet-v1"
DIM = 128
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def _role(process: psutil.Process) -> str:
    """What a process of the mesh is, for the CPU table."""
    try:
        line = " ".join(process.cmdline())
    except psutil.Error:
        return "gone"
    for role in ("api_svc", "embed_svc", "admin_svc", "tritonserver", "envoy", "postgres"):
        if role in line:
            return role
    return process.name()


def cpu_seconds(roots: list[int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process ("client") and by the processes
    of ``roots`` and their descendants, by role."""
    processes = {os.getpid(): psutil.Process()}
    for pid in roots:
        root = psutil.Process(pid)
        processes.update((p.pid, p) for p in (root, *root.children(recursive=True)))
    totals: dict[str, float] = {}
    for pid, process in processes.items():
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        role = "client" if pid == os.getpid() else _role(process)
        totals[role] = totals.get(role, 0.0) + times.user + times.system
    return totals


def cpu_table(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    """CPU seconds per role between two snapshots, and as cores busy on average."""
    used = {role: after[role] - before.get(role, 0.0) for role in after}
    return ", ".join(
        f"{role} {value:.1f} s ({value / seconds:.2f} cores)"
        for role, value in sorted(used.items(), key=lambda item: -item[1])
        if value >= 0.05
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Mesh:
    """A running mesh started by the launcher."""

    envoy: str
    api: str
    embed: str
    data_dir: Path
    key: str
    """The demo RECOGNITION key."""
    launcher_pid: int

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres:@/postgres?host={self.data_dir}/pg"


@contextmanager
def mesh_running(work: Path, extra_env: dict[str, str]) -> Iterator[Mesh]:
    """The launcher's mesh on free ports, stopped with SIGINT (Ctrl-C) at the end."""
    names = (
        "ENVOY",
        "ENVOY_ADMIN",
        "API",
        "EMBED",
        "ADMIN",
        "CONSOLE",
        "TRITON_GRPC",
        "TRITON_HTTP",
    )
    ports = {name: _free_port() for name in names}
    data_dir = work / "mesh"
    env = dict(os.environ)
    env.update({f"FACEGRID_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(FACEGRID_DATA_DIR=str(data_dir), FACEGRID_LOGS_TO_FILES="1", PYTHONUNBUFFERED="1")
    env.pop("FACEGRID_DATABASE_URL", None)
    env.update(extra_env)
    log = work / "launcher.log"
    process = launch(env, log, timeout_s=300)
    try:
        admin_log = (data_dir / "logs" / "admin_svc.log").read_text()
        key = re.search(r"^\s+RECOGNITION\s+\S+\s+(\S+)$", admin_log, re.M)
        assert key is not None, "no demo RECOGNITION key in admin_svc's log"
        yield Mesh(
            f"127.0.0.1:{ports['ENVOY']}",
            f"127.0.0.1:{ports['API']}",
            f"127.0.0.1:{ports['EMBED']}",
            data_dir,
            key.group(1),
            process.pid,
        )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)


@contextmanager
def second_api_node(mesh: Mesh, work: Path) -> Iterator[tuple[str, int]]:
    """Another api_svc process on a free port, on the mesh's PostgreSQL and embed_svc."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        FACEGRID_API_DB_TIMEOUT_S=LOAD_TIMEOUT_S,
        FACEGRID_API_PORT=str(port),
        FACEGRID_DATABASE_URL=mesh.database_url,
        FACEGRID_EMBED_URL=mesh.embed,
        FACEGRID_LOG_FORMAT="json",
    )
    with (work / "api_svc-1.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api_svc"], cwd=REPO, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while not grpc_serving(f"127.0.0.1:{port}"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the second api_svc did not start; see {work}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _key(mesh: Mesh) -> tuple[tuple[str, str]]:
    return (("x-api-key", mesh.key),)


async def _empty(stub: pb_grpc.RecognitionServiceStub, mesh: Mesh) -> None:
    await stub.DeleteSubjects(pb.DeleteSubjectsRequest(), metadata=_key(mesh), timeout=600)


async def add_face_rate(
    stub: pb_grpc.RecognitionServiceStub, mesh: Mesh, photos: list[bytes], args: argparse.Namespace
) -> float:
    async def add(i: int) -> int:
        image = httpbody_pb2.HttpBody(content_type="image/jpeg", data=photos[i % len(photos)])
        request = pb.AddFaceRequest(image=image, subject=f"person-{i % 50}")
        await stub.AddFace(request, metadata=_key(mesh), timeout=120)
        return 1

    return (await rate(add, args.in_flight, args.seconds))[1]


async def bulk_rate(
    stub: pb_grpc.RecognitionServiceStub,
    mesh: Mesh,
    photos: list[bytes],
    seconds: float,
    in_flight: int,
) -> tuple[float, int]:
    """Faces/s of one BulkAddFaces stream kept ``in_flight`` photos ahead; items failed."""
    window = asyncio.Semaphore(in_flight)
    deadline = time.perf_counter() + seconds

    async def items() -> AsyncIterator[pb.BulkAddFacesRequest]:
        i = 0
        while time.perf_counter() < deadline:
            await window.acquire()
            yield pb.BulkAddFacesRequest(
                subject=f"person-{i % 50}", file=photos[i % len(photos)], client_key=str(i)
            )
            i += 1

    started = time.perf_counter()
    stored = failed = 0
    async for result in stub.BulkAddFaces(items(), metadata=_key(mesh), timeout=600):
        window.release()
        if result.HasField("image_id"):
            stored += 1
        else:
            failed += 1
    return stored / (time.perf_counter() - started), failed


async def images(args: argparse.Namespace, mesh: Mesh) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from bench.throughput import in_process_pipeline, one_face_photos
    from embed_svc import catalog
    from embed_svc.backends.onnx import OnnxBackend

    photos = one_face_photos(args.faces)
    print(
        f"machine: {os.cpu_count()} CPUs, shared; {len(photos)} one-face photos of {args.faces};"
        f" {args.in_flight} in flight; {args.seconds:.0f} s per figure, {args.rounds} rounds"
    )
    backend = await OnnxBackend.connect(
        args.repository, [catalog.DETECTOR.model, catalog.DLIB_RESNET.model], threads=1
    )
    executor = ThreadPoolExecutor(max_workers=2)
    analyze = in_process_pipeline(backend, photos, executor)
    async with grpc.aio.insecure_channel(mesh.envoy, options=_CHANNEL_OPTIONS) as channel:
        stub = pb_grpc.RecognitionServiceStub(channel)
        await rate(analyze, args.in_flight, 3.0)  # warm-ups
        await bulk_rate(stub, mesh, photos, 3.0, args.in_flight)
        totals = {"in-process": 0.0, "AddFace": 0.0, "BulkAddFaces": 0.0}
        for round_ in range(1, args.rounds + 1):
            local = (await rate(analyze, args.in_flight, args.seconds))[1]
            await _empty(stub, mesh)
            single = await add_face_rate(stub, mesh, photos, args)
            await _empty(stub, mesh)
            bulk, failed = await bulk_rate(stub, mesh, photos, args.seconds, args.in_flight)
            await _empty(stub, mesh)
            print(
                f"round {round_}: in-process pipeline {local:.1f} faces/s, AddFace through Envoy"
                f" {single:.1f}, BulkAddFaces through Envoy {bulk:.1f} ({failed} failed);"
                f" Bulk/in-process {bulk / local:.2f}, AddFace/in-process {single / local:.2f},"
                f" Bulk/AddFace {bulk / single:.2f}"
            )
            for name, value in zip(totals, (local, single, bulk), strict=True):
                totals[name] += value
    executor.shutdown()
    await backend.close()
    local, single, bulk = (value / args.rounds for value in totals.values())
    print(
        f"mean of {args.rounds} rounds: in-process {local:.1f} faces/s, AddFace {single:.1f},"
        f" BulkAddFaces {bulk:.1f}; Bulk/in-process {bulk / local:.2f},"
        f" AddFace/in-process {single / local:.2f}, Bulk/AddFace {bulk / single:.2f}"
    )


def _vectors(seed: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    block = rng.standard_normal((count, DIM)).astype(np.float32)
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    return block


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _encoded_item(subject: str, vector: np.ndarray) -> bytes:
    """BulkAddFacesRequest{subject, embedding{values (packed float), calculator}} on the wire."""
    embedding = _field(1, vector.astype("<f4").tobytes()) + _field(2, CALCULATOR.encode())
    return _field(2, subject.encode()) + _field(4, embedding)


async def embeddings(args: argparse.Namespace, mesh: Mesh, second: str, second_pid: int) -> None:
    targets = [mesh.envoy] if args.to == "envoy" else [mesh.api, second]
    print(
        f"machine: {os.cpu_count()} CPUs, shared; {args.count} random unit {DIM}-d vectors,"
        f" {args.subjects_per} per subject; {args.streams} BulkAddFaces streams to"
        f" {'Envoy' if args.to == 'envoy' else 'the two api_svc nodes in turn'},"
        f" window {args.window} items each"
    )
    chunk = 10_000
    first = pb.BulkAddFacesRequest.FromString(_encoded_item("s0", _vectors(0, 1)[0]))
    assert first.embedding.calculator == CALCULATOR and len(first.embedding.values) == DIM
    counts = {"stored": 0, "failed": 0}
    started = time.perf_counter()

    async def stream(number: int, target: str) -> None:
        window = asyncio.Semaphore(args.window)

        async def items() -> AsyncIterator[bytes]:
            for start in range(number * chunk, args.count, chunk * args.streams):
                block = _vectors(start, min(chunk, args.count - start))
                for offset, row in enumerate(block):
                    i = start + offset
                    await window.acquire()
                    yield _encoded_item(f"s{i // args.subjects_per}", row)

        async with grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS) as channel:
            # The stub's method with the items already serialised: the client's cost of
            # building a protobuf message per vector is kept out of the figure.
            bulk_add: grpc.aio.StreamStreamMultiCallable = channel.stream_stream(
                "/facegrid.recognition.v1.RecognitionService/BulkAddFaces",
                request_serializer=None,
                response_deserializer=pb.BulkAddFacesResponse.FromString,
            )
            async for result in bulk_add(items(), metadata=_key(mesh), timeout=3600):
                window.release()
                counts["stored" if result.HasField("image_id") else "failed"] += 1
                done = counts["stored"] + counts["failed"]
                if done % 100_000 == 0:
                    print(f"  {done} items, {time.perf_counter() - started:.0f} s")

    async with grpc.aio.insecure_channel(mesh.envoy, options=_CHANNEL_OPTIONS) as channel:
        await _empty(pb_grpc.RecognitionServiceStub(channel), mesh)
    roots = [mesh.launcher_pid, second_pid, *postgres_pids(mesh)]
    cpu_before = cpu_seconds(roots)
    started = time.perf_counter()
    await asyncio.gather(*(stream(n, targets[n % len(targets)]) for n in range(args.streams)))
    elapsed = time.perf_counter() - started
    cpu_after = cpu_seconds(roots)
    stored, failed = counts["stored"], counts["failed"]
    print(f"imported {stored} ({failed} failed) in {elapsed:.1f} s: {stored / elapsed:.0f} faces/s")
    print(f"CPU during the import: {cpu_table(cpu_before, cpu_after, elapsed)}")
    sample = np.random.default_rng(1).choice(args.count, 5, replace=False)
    queries = []
    for i in sample:
        start = (int(i) // chunk) * chunk
        row = _vectors(start, min(chunk, args.count - start))[int(i) - start]
        queries.append((f"s{int(i) // args.subjects_per}", row.tolist()))
    for name, node in (("api_svc-0", mesh.api), ("api_svc-1", second)):
        seconds = await _found_on(node, mesh, queries)
        print(f"{name} ({node}): every sampled vector found as its subject {seconds:.1f} s after")


def postgres_pids(mesh: Mesh) -> list[int]:
    """The mesh's PostgreSQL server (pg_ctl starts it detached from the launcher)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        line = " ".join(process.info["cmdline"] or ())
        if process.info["name"] == "postgres" and str(mesh.data_dir) in line:
            found.append(process.pid)
    return found


async def _found_on(node: str, mesh: Mesh, queries: list[tuple[str, list[float]]]) -> float:
    """Seconds until ``node`` answers every query with its own subject first."""
    started = time.perf_counter()
    request = pb.RecognizeEmbeddingsRequest()
    for _, vector in queries:
        request.embeddings.add().extend(vector)
    async with grpc.aio.insecure_channel(node, options=_CHANNEL_OPTIONS) as channel:
        stub = pb_grpc.RecognitionServiceStub(channel)
        while True:
            try:
                reply = await stub.RecognizeEmbeddings(request, metadata=_key(mesh), timeout=600)
            except grpc.aio.AioRpcError as error:  # 503 while the node loads the collection
                if error.code() is not grpc.StatusCode.UNAVAILABLE:
                    raise
                print(f"  {node}: {error.details()}; asking again")
                await asyncio.sleep(1.0)
                continue
            best = [r.similarities[0].subject if r.similarities else "" for r in reply.result]
            if best == [name for name, _ in queries]:
                return time.perf_counter() - started
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"{node} did not find the imported vectors: {best}")
            await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("images")
    one.add_argument("--faces", type=Path, default=Path("/work/shared/faces"))
    one.add_argument("--repository", type=Path, default=Path("triton_models"))
    one.add_argument("--seconds", type=float, default=15.0)
    one.add_argument("--rounds", type=int, default=3)
    one.add_argument("--in-flight", type=int, default=8)
    many = sub.add_parser("embeddings")
    many.add_argument("--count", type=int, default=1_000_000)
    many.add_argument("--subjects-per", type=int, default=10)
    many.add_argument("--window", type=int, default=2048)
    many.add_argument("--streams", type=int, default=2)
    many.add_argument("--to", choices=("nodes", "envoy"), default="nodes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fg-bulk-", dir="/tmp"))
    work.chmod(0o755)
    extra = {} if args.what == "images" else {"FACEGRID_API_DB_TIMEOUT_S": LOAD_TIMEOUT_S}
    with mesh_running(work, extra) as mesh:
        if args.what == "images":
            asyncio.run(images(args, mesh))
        else:
            with second_api_node(mesh, work) as (second, second_pid):
                asyncio.run(embeddings(args, mesh, second, second_pid))
    shutil.rmtree(work, ignore_errors=True)  # kept, with the logs, when something failed


if __name__ == "__main__":
    main()
