"""Bulk enrolment's item checks and its batching, with fakes for the database and embed_svc:
one result per item, batches within their limits, embed_svc calls within the concurrency bound,
a failed batch failing only its own items."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from api_svc.auth import Service, ServiceType
from api_svc.bulk_enrolment import BulkEnrolment, BulkSettings
from api_svc.bulk_items import FailedItem, ImageItem, ReadyItem, prepare
from api_svc.embed_client import embed_unavailable
from api_svc.face_store import NewFace, writes_blocked
from api_svc.similarity import CalculatorModel, Calculators
from facegrid.embedding.v1 import embedding_service_pb2 as embed_pb
from facegrid.errors import ServiceError
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.similarity import Calibration
from tests.api_svc.fakes import DLIB, FakeEmbed, face

SERVICE = Service(uuid.uuid4(), ServiceType.RECOGNITION, None)
DLIB_MODEL = CalculatorModel(DLIB, 3, Calibration(0.5, 10.0), True, "0.3.0")
OTHER_MODEL = CalculatorModel("facenet", 3, Calibration(1.1, 5.0), False, "1")
KNOWN = {DLIB: DLIB_MODEL, "facenet": OTHER_MODEL}
ONE = b"\xff\xd8\xff one face"
TWO = b"\x89PNG\r\n\x1a\n two faces"


def embedding(subject: str, values: Sequence[float], calculator: str = DLIB, **kw: str):
    return pb.BulkAddFacesRequest(
        client_key=f"{subject}-key",
        subject=subject,
        embedding=pb.PrecomputedEmbedding(values=values, calculator=calculator, **kw),
    )


def prepared(request: pb.BulkAddFacesRequest, max_file_bytes: int = 100):
    return prepare(request, 7, max_file_bytes, DLIB_MODEL, KNOWN)


def reason(request: pb.BulkAddFacesRequest, max_file_bytes: int = 100) -> tuple[str, int]:
    result = prepared(request, max_file_bytes)
    assert isinstance(result, FailedItem), result
    assert result.item.index == 7 and result.item.client_key == request.client_key
    return result.error.reason, result.error.compreface_code or 0


def test_an_embedding_is_checked_normalised_and_versioned() -> None:
    ready = prepared(embedding("Ann", [0.0, 3.0, 4.0]))
    assert isinstance(ready, ReadyItem)
    example = ready.example
    assert np.allclose(np.frombuffer(example.embedding, "<f4"), [0.0, 0.6, 0.8])
    assert (example.calculator, example.calculator_version, example.embedding_dim) == (
        DLIB,
        "0.3.0",
        3,
    )
    assert example.image is None and ready.size == 12
    own_version = prepared(embedding("Ann", [1, 0, 0], calculator_version="0.2"))
    assert isinstance(own_version, ReadyItem)
    assert own_version.example.calculator_version == "0.2"


@pytest.mark.parametrize("scale", [1e-40, 1e-30, 1e30])
def test_tiny_and_huge_embeddings_are_normalised_too(scale: float) -> None:
    ready = prepared(embedding("Ann", [0.0, 3.0 * scale, 4.0 * scale]))
    assert isinstance(ready, ReadyItem)
    assert np.allclose(np.frombuffer(ready.example.embedding, "<f4"), [0.0, 0.6, 0.8])


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (embedding("Ann", [1.0, 0.0]), ("WRONG_EMBEDDING_SIZE", 26)),
        (embedding("Ann", [1.0, 0.0, 0.0, 0.0]), ("WRONG_EMBEDDING_SIZE", 26)),
        (embedding("Ann", [0.0, 0.0, 0.0]), ("INVALID_EMBEDDING", 26)),
        (embedding("Ann", [math.inf, 0.0, 0.0]), ("INVALID_EMBEDDING", 26)),
        (embedding("Ann", [math.nan, 0.0, 0.0]), ("INVALID_EMBEDDING", 26)),
        (embedding("Ann", [1.0, 0.0, 0.0], calculator="arcface"), ("UNKNOWN_CALCULATOR", 26)),
        (embedding("Ann", [1.0, 0.0, 0.0], calculator="facenet"), ("CALCULATOR_MISMATCH", 26)),
        (embedding("Ann", [1.0, 0.0, 0.0], calculator=" "), ("MISSING_CALCULATOR", 26)),
        (embedding("", [1.0, 0.0, 0.0]), ("INVALID_SUBJECT_NAME", 26)),
        (embedding("A;nn", [1.0, 0.0, 0.0]), ("INVALID_SUBJECT_NAME", 26)),
        (pb.BulkAddFacesRequest(subject="Ann"), ("MISSING_FILE", 26)),
        (pb.BulkAddFacesRequest(subject="Ann", file=b""), ("MISSING_FILE", 26)),
        (pb.BulkAddFacesRequest(subject="Ann", file=b"x" * 101), ("FILE_TOO_LARGE", 26)),
        (
            pb.BulkAddFacesRequest(subject="Ann", file=ONE, content_type="text/plain"),
            ("UNSUPPORTED_CONTENT_TYPE", 26),
        ),
        (
            pb.BulkAddFacesRequest(subject="Ann", file=ONE, client_key="k" * 1001),
            ("INVALID_CLIENT_KEY", 26),
        ),
    ],
)
def test_bad_items_name_their_problem(
    request_: pb.BulkAddFacesRequest, expected: tuple[str, int]
) -> None:
    assert reason(request_) == expected


def test_an_image_keeps_its_content_type_or_gets_one_from_its_bytes() -> None:
    told = prepared(pb.BulkAddFacesRequest(subject="Ann", file=ONE))
    given = prepared(
        pb.BulkAddFacesRequest(subject="Ann", file=ONE, content_type="image/webp; q=1")
    )
    threshold = prepared(pb.BulkAddFacesRequest(subject="Ann", file=TWO, det_prob_threshold=0.7))
    assert isinstance(told, ImageItem) and told.content_type == "image/jpeg"
    assert isinstance(given, ImageItem) and given.content_type == "image/webp"
    assert isinstance(threshold, ImageItem)
    assert (threshold.content_type, threshold.det_prob_threshold) == ("image/png", 0.7)
    assert told.det_prob_threshold is None


@dataclass
class FakeStore:
    """Records batches; fails the calls whose number is in ``fail`` (0-based); the first call
    waits for ``hold`` when set."""

    batches: list[list[NewFace]] = field(default_factory=list)
    fail: set[int] = field(default_factory=set)
    blocked: bool = False
    hold: asyncio.Event | None = None
    calls: int = 0

    async def check_writable(self, service_id: uuid.UUID, /) -> None:
        if self.blocked:
            raise writes_blocked(service_id)

    async def add_examples(self, service_id: uuid.UUID, /, faces: Sequence[NewFace]) -> None:
        call, self.calls = self.calls, self.calls + 1
        if call == 0 and self.hold is not None:
            await self.hold.wait()
        if call in self.fail:
            raise writes_blocked(service_id)
        self.batches.append(list(faces))


@dataclass
class SlowEmbed(FakeEmbed):
    """FakeEmbed whose calls take a few turns of the event loop; counts calls at once."""

    in_flight: int = 0
    most_in_flight: int = 0

    async def analyze(self, images, options) -> embed_pb.AnalyzeImagesResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(5):
                await asyncio.sleep(0)  # work taking time, not synchronisation
            return await super().analyze(images, options)
        finally:
            self.in_flight -= 1


def bulk(
    store: FakeStore,
    embed: FakeEmbed,
    *,
    concurrency: int = 2,
    max_items: int = 4,
    max_bytes: int = 1 << 20,
) -> BulkEnrolment:
    return BulkEnrolment(
        store, embed, Calculators(embed), 100, BulkSettings(concurrency, max_items, max_bytes)
    )


async def run(
    enrolment: BulkEnrolment, items: list[pb.BulkAddFacesRequest], done: asyncio.Event | None = None
) -> list[pb.BulkAddFacesResponse]:
    """Every result of a stream of ``items``; ``done`` is set once the last one was read."""
    pending = iter(items)
    results: list[pb.BulkAddFacesResponse] = []

    async def read() -> pb.BulkAddFacesRequest | None:
        item = next(pending, None)
        if item is None and done is not None:
            done.set()
        return item

    async def write(result: pb.BulkAddFacesResponse) -> None:
        results.append(result)

    await enrolment.enrol(await enrolment.accept(SERVICE), read, write)
    return results


def stored_ids(store: FakeStore) -> list[str]:
    return [str(face.image_id) for batch in store.batches for face in batch]


async def test_batches_take_what_is_ready_within_the_item_limit() -> None:
    sent = asyncio.Event()
    store = FakeStore(hold=sent)  # the first write lasts until every item is in
    items = [embedding(f"p{i}", [1.0, float(i), 0.0]) for i in range(7)]
    results = await run(bulk(store, FakeEmbed(), max_items=4), items, sent)
    assert sorted(r.index for r in results) == list(range(7))
    assert all(r.HasField("image_id") for r in results)
    sizes = [len(batch) for batch in store.batches]
    assert sum(sizes) == 7 and max(sizes) == 4 and all(size <= 4 for size in sizes)
    assert sorted(stored_ids(store)) == sorted(r.image_id for r in results)
    by_index = {r.index: r for r in results}
    for batch in store.batches:
        for stored in batch:
            [result] = [r for r in results if r.image_id == str(stored.image_id)]
            assert stored.subject == by_index[result.index].subject == f"p{result.index}"


async def test_batches_stay_within_the_byte_limit() -> None:
    sent = asyncio.Event()
    store = FakeStore(hold=sent)
    items = [embedding(f"p{i}", [1.0, 0.0, float(i)]) for i in range(6)]
    await run(bulk(store, FakeEmbed(), max_items=10, max_bytes=24), items, sent)
    sizes = [len(batch) for batch in store.batches]
    assert sum(sizes) == 6 and max(sizes) == 2  # 12 bytes per 3-d embedding


async def test_images_are_embedded_concurrently_within_the_bound() -> None:
    embed = SlowEmbed(faces={ONE: [face(10, 50, [1.0, 0.0, 0.0])]})
    store = FakeStore()
    items = [pb.BulkAddFacesRequest(client_key=str(i), subject="Ann", file=ONE) for i in range(6)]
    results = await run(bulk(store, embed, concurrency=2), items)
    assert embed.most_in_flight == 2
    assert len(embed.calls) == 6
    assert sorted(int(r.client_key) for r in results if r.HasField("image_id")) == list(range(6))
    assert len(stored_ids(store)) == 6
    assert all(face.example.image == ONE for batch in store.batches for face in batch)


async def test_a_failed_batch_fails_only_its_items() -> None:
    sent = asyncio.Event()
    store = FakeStore(hold=sent, fail={1})
    items = [embedding(f"p{i}", [1.0, 0.0, float(i)]) for i in range(6)]
    results = await run(bulk(store, FakeEmbed(), max_items=2), items, sent)
    assert len(results) == 6
    failed = [r for r in results if r.HasField("error")]
    assert len(failed) == 2
    assert {(r.error.reason, r.error.code, r.error.http_status) for r in failed} == {
        ("WRITES_BLOCKED_BY_MIGRATION", 32, 405)
    }
    ok = sorted(r.image_id for r in results if r.HasField("image_id"))
    assert ok == sorted(stored_ids(store)) and len(ok) == 4


async def test_embed_svc_failures_and_bad_images_are_item_errors() -> None:
    embed = FakeEmbed(faces={ONE: [face(10, 50, [1.0, 0.0, 0.0])], TWO: [face(1, 5), face(9, 5)]})
    store = FakeStore()
    items = [
        pb.BulkAddFacesRequest(client_key="one", subject="Ann", file=ONE),
        pb.BulkAddFacesRequest(client_key="two", subject="Ann", file=TWO),
        pb.BulkAddFacesRequest(client_key="none", subject="Ann", file=b"blank"),
        embedding("Bob", [0.0, 0.0, 2.0]),
    ]
    results = {r.client_key: r for r in await run(bulk(store, embed), items)}
    assert results["one"].HasField("image_id") and results["Bob-key"].HasField("image_id")
    assert (results["two"].error.reason, results["two"].error.code) == ("TOO_MANY_FACES", 31)
    assert (results["none"].error.reason, results["none"].error.code) == ("NO_FACE_DETECTED", 28)
    assert len(stored_ids(store)) == 2

    embed.error = embed_unavailable()
    down = await run(bulk(store, embed), items[:1])
    [result] = down
    assert (result.error.reason, result.error.code, result.error.http_status) == (
        "EMBEDDING_SERVICE_FAILED",
        41,
        500,
    )


async def test_a_blocked_collection_refuses_the_stream_before_reading_it() -> None:
    store = FakeStore(blocked=True)
    with pytest.raises(ServiceError) as raised:
        await bulk(store, FakeEmbed()).accept(SERVICE)
    assert (raised.value.compreface_code, raised.value.http_status) == (32, 405)
    assert store.calls == 0
