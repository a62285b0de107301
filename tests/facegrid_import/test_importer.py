"""The importer against an in-process api_svc (real PostgreSQL, fake embed_svc) on a free port:
folder scanning, the state file, per-file errors, stopping and resuming, and the command line
(run as its own process)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from api_svc.auth import Authenticator
from api_svc.db import PgKeyStore
from api_svc.stats import RequestStats
from facegrid_import.files import scan
from facegrid_import.state import ImportState, default_path
from facegrid_import.upload import CallFailed, upload
from tests.api_svc.fakes import FakeCounter, FakeEmbed, face
from tests.api_svc.helpers import build_servicer, demo_keys, serving

REPO = Path(__file__).resolve().parents[2]
FACE = b"\xff\xd8\xff a face"
OTHER_FACE = b"\x89PNG\r\n\x1a\n another face"
GROUP = b"\xff\xd8\xff two faces"
BLANK = b"\xff\xd8\xff no face"


@dataclass
class Server:
    target: str
    key: str
    pool: asyncpg.Pool
    service_id: uuid.UUID

    async def stored(self) -> list[tuple[str, bytes]]:
        rows = await self.pool.fetch(
            "SELECT s.name, e.image FROM face_examples e JOIN subjects s ON s.id = e.subject_id"
            " WHERE e.service_id = $1 ORDER BY s.name",
            self.service_id,
        )
        return [(row["name"], row["image"]) for row in rows]


@pytest.fixture
async def server(free_port: Callable[[], int], pool: asyncpg.Pool) -> AsyncIterator[Server]:
    service_id, key = (await demo_keys(pool))["RECOGNITION"]
    embed = FakeEmbed(
        faces={
            FACE: [face(10, 50, [1.0, 0.0, 0.0])],
            OTHER_FACE: [face(10, 50, [0.0, 1.0, 0.0])],
            GROUP: [face(10, 50, [1.0, 0.0, 0.0]), face(90, 50, [0.0, 0.0, 1.0])],
        }
    )
    servicer = build_servicer(
        Authenticator(PgKeyStore(pool, 5), 0), RequestStats(FakeCounter()), embed, pool
    )
    port = free_port()
    async with serving(servicer, port):
        yield Server(f"127.0.0.1:{port}", str(key), pool, service_id)


def folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "photos"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_scan_takes_subject_folders_and_reports_loose_photos(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        {
            "Ann/1.jpg": FACE,
            "Ann/2.PNG": FACE,
            "Bob/holiday/3.jpeg": FACE,
            "loose.jpg": FACE,
            "Ann/notes.txt": b"text",
            ".cache/4.jpg": FACE,
            "Cy/.5.jpg": FACE,
        },
    )
    photos, orphans = scan(root)
    assert [(p.key, p.subject, p.content_type) for p in photos] == [
        ("Ann/1.jpg", "Ann", "image/jpeg"),
        ("Ann/2.PNG", "Ann", "image/png"),
        ("Bob/holiday/3.jpeg", "Bob", "image/jpeg"),
    ]
    assert orphans == ["loose.jpg"]


def test_the_state_survives_a_reopen_and_a_cut_line(tmp_path: Path) -> None:
    path = default_path(tmp_path, "key-1")
    assert path != default_path(tmp_path, "key-2") and path.parent == tmp_path
    state = ImportState(path)
    state.record("Ann/1.jpg", "id-1")
    state.record("Bob/2.jpg", "id-2")
    state.close()
    with path.open("a") as out:
        out.write('{"key": "Cy/3.jpg", "ima')  # a kill in mid-write
    assert ImportState(path).done == {"Ann/1.jpg": "id-1", "Bob/2.jpg": "id-2"}


@pytest.mark.integration
async def test_upload_stores_good_files_and_reports_bad_ones(
    server: Server, tmp_path: Path
) -> None:
    root = folder(
        tmp_path,
        {"Ann/1.jpg": FACE, "Ann/group.jpg": GROUP, "Bob/1.png": OTHER_FACE, "Bob/2.jpg": BLANK},
    )
    photos, _ = scan(root)
    state = ImportState(tmp_path / "state.jsonl")
    seen: list[bool] = []
    outcome = await upload(
        photos,
        state,
        target=server.target,
        api_key=server.key,
        concurrency=2,
        on_result=seen.append,
        stop=asyncio.Event(),
    )
    state.close()
    assert outcome.stored == 2 and sorted(seen) == [False, False, True, True]
    assert sorted((e.key, e.reason, e.code) for e in outcome.errors) == [
        ("Ann/group.jpg", "TOO_MANY_FACES", 31),
        ("Bob/2.jpg", "NO_FACE_DETECTED", 28),
    ]
    assert set(ImportState(state.path).done) == {"Ann/1.jpg", "Bob/1.png"}
    assert await server.stored() == [("Ann", FACE), ("Bob", OTHER_FACE)]


@pytest.mark.integration
async def test_a_stopped_upload_resumes_where_it_stopped(server: Server, tmp_path: Path) -> None:
    root = folder(tmp_path, {f"P{i}/{i}.jpg": FACE for i in range(8)})
    photos, _ = scan(root)
    state = ImportState(tmp_path / "state.jsonl")
    stop = asyncio.Event()
    first = await upload(
        photos,
        state,
        target=server.target,
        api_key=server.key,
        concurrency=2,
        on_result=lambda ok: stop.set(),  # Ctrl-C as the first result comes in
        stop=stop,
    )
    state.close()
    assert first.stopped and 1 <= first.stored < 8 and not first.errors
    resumed = ImportState(state.path)
    assert len(resumed.done) == first.stored
    rest = [p for p in photos if p.key not in resumed.done]
    second = await upload(
        rest,
        resumed,
        target=server.target,
        api_key=server.key,
        concurrency=2,
        on_result=lambda ok: None,
        stop=asyncio.Event(),
    )
    resumed.close()
    assert first.stored + second.stored == 8 and not second.stopped
    assert sorted(name for name, _ in await server.stored()) == [f"P{i}" for i in range(8)]


@pytest.mark.integration
async def test_a_wrong_key_is_refused_before_any_photo_is_sent(
    server: Server, tmp_path: Path
) -> None:
    root = folder(tmp_path, {"Ann/1.jpg": FACE})
    photos, _ = scan(root)
    with pytest.raises(CallFailed) as raised:
        await upload(
            photos,
            ImportState(tmp_path / "state.jsonl"),
            target=server.target,
            api_key=str(uuid.uuid4()),
            concurrency=1,
            on_result=lambda ok: None,
            stop=asyncio.Event(),
        )
    assert raised.value.code.name == "UNAUTHENTICATED"
    assert "not found" in raised.value.message
    assert await server.stored() == []


@pytest.mark.integration
async def test_the_command_line_reports_and_resumes(server: Server, tmp_path: Path) -> None:
    root = folder(tmp_path, {"Ann/1.jpg": FACE, "Bob/1.jpg": BLANK, "loose.jpg": FACE})
    report = tmp_path / "report.json"
    argv = [
        sys.executable,
        "-m",
        "facegrid_import",
        str(root),
        "--api-key",
        server.key,
        "--url",
        f"http://{server.target}",
        "--no-progress",
        "--report",
        str(report),
    ]

    async def run() -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode()

    status, out = await run()
    assert status == 1, out
    assert "FAILED Bob/1.jpg: NO_FACE_DETECTED (code 28)" in out
    assert "FAILED loose.jpg: NOT_IN_A_SUBJECT_FOLDER" in out
    assert "stored 1, failed 2" in out
    assert {e["key"] for e in json.loads(report.read_text())} == {"Bob/1.jpg", "loose.jpg"}
    status, out = await run()
    assert status == 1 and "1 files already stored" in out and "stored 0, failed 2" in out
    assert await server.stored() == [("Ann", FACE)]


def test_the_importer_imports_no_service_code() -> None:
    probe = (
        "import sys, facegrid_import.__main__;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'api_svc', 'embed_svc',"
        " 'admin_svc', 'launcher', 'gateway'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
