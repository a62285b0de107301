"""GrpcEmbedClient against an in-process EmbeddingService fake: message mapping, deadlines and
the translation of gRPC failures into EmbedError kinds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from admin_svc.embed_client import EmbedError, GrpcEmbedClient
from facegrid.embedding.v1 import embedding_service_pb2 as epb
from facegrid.embedding.v1 import embedding_service_pb2_grpc
from facegrid.errors import abort, invalid_argument
from facegrid.server import RunningServer, start_server, stop_server


class FakeEmbeddingService(embedding_service_pb2_grpc.EmbeddingServiceServicer):
    """Answers EmbedFaces with one 2-d embedding per image; b"bad" images are refused."""

    def __init__(self) -> None:
        self.requests: list[epb.EmbedFacesRequest] = []

    async def GetStatus(self, request: epb.GetStatusRequest, context: Any) -> epb.GetStatusResponse:
        return epb.GetStatusResponse(
            calculators=[
                epb.CalculatorInfo(
                    model=epb.ModelVersion(name="calc-a", version="v1"),
                    embedding_size=2,
                    is_default=True,
                )
            ],
            backend="triton",
        )

    async def EmbedFaces(
        self, request: epb.EmbedFacesRequest, context: Any
    ) -> epb.EmbedFacesResponse:
        self.requests.append(request)
        if b"bad" in request.images:
            await abort(context, invalid_argument("IMAGE_UNREADABLE", "image 1 is unreadable"))
        if b"crash" in request.images:
            raise RuntimeError("/srv/embed_svc/secret.py line 12")
        return epb.EmbedFacesResponse(
            embeddings=[epb.Embedding(values=[0.6, 0.8]) for _ in request.images],
            calculator=epb.ModelVersion(name=request.calculator or "calc-a", version="v1"),
        )


@pytest.fixture
async def embed_server() -> AsyncIterator[tuple[RunningServer, FakeEmbeddingService]]:
    fake = FakeEmbeddingService()
    running = await start_server(
        host="127.0.0.1",
        port=0,
        register=lambda s: embedding_service_pb2_grpc.add_EmbeddingServiceServicer_to_server(
            fake, s
        ),
        service_names=["facegrid.embedding.v1.EmbeddingService"],
    )
    await running.set_serving(True)
    await running.set_ready(True)  # clients balance over ready nodes only
    yield running, fake
    await stop_server(running, 0)


async def test_calculators_and_embeddings_map_from_the_contract(
    embed_server: tuple[RunningServer, FakeEmbeddingService],
) -> None:
    running, fake = embed_server
    client, channel = GrpcEmbedClient.connect(f"127.0.0.1:{running.port}", timeout_s=10)
    try:
        [calculator] = await client.list_calculators()
        assert (calculator.name, calculator.version, calculator.embedding_size) == (
            "calc-a",
            "v1",
            2,
        )
        assert calculator.is_default
        result = await client.embed_faces([b"one", b"two"], "calc-a")
        assert result.calculator == "calc-a" and result.version == "v1"
        assert [tuple(round(v, 5) for v in e) for e in result.vectors] == [(0.6, 0.8)] * 2
        assert list(fake.requests[0].images) == [b"one", b"two"]
        assert fake.requests[0].calculator == "calc-a"
        with pytest.raises(EmbedError) as info:
            await client.embed_faces([b"good", b"bad"], "calc-a")
        assert info.value.problem == "rejected"
        with pytest.raises(EmbedError) as info:
            await client.embed_faces([b"crash"], "calc-a")
        assert info.value.problem == "failed"
        assert "secret" not in str(info.value)
    finally:
        await channel.close()


async def test_an_unreachable_embed_svc_is_unavailable(free_port: Any) -> None:
    client, channel = GrpcEmbedClient.connect(f"127.0.0.1:{free_port()}", timeout_s=2)
    try:
        with pytest.raises(EmbedError) as info:
            await client.embed_faces([b"x"], "calc-a")
        assert info.value.problem == "unavailable"
        with pytest.raises(EmbedError) as info:
            await client.list_calculators()
        assert info.value.problem == "unavailable"
    finally:
        await channel.close()
