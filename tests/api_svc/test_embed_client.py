"""embed_svc's failures translated once into CompreFace's codes, naming the REST field."""

from __future__ import annotations

import grpc

from api_svc.embed_client import GrpcEmbedClient, translate
from facegrid.errors import ServiceError, invalid_argument, to_status
from facegrid.server import stop_server
from tests.facegrid.nodes import Node, until_answering


class FakeRpcError(grpc.RpcError):
    def __init__(self, error: ServiceError | None, code: grpc.StatusCode) -> None:
        self._status = to_status(error) if error else None
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._status.details if self._status else "boom"

    def trailing_metadata(self):
        return self._status.trailing_metadata if self._status else ()


def test_an_image_error_keeps_its_code_and_names_the_field() -> None:
    sent = invalid_argument(
        "UNSUPPORTED_IMAGE_FORMAT", "image 1: not an image", 21, image_index="1"
    )
    error = translate(
        FakeRpcError(sent, grpc.StatusCode.INVALID_ARGUMENT), ["source_image", "target_image"]
    )
    assert (error.code, error.reason, error.compreface_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "UNSUPPORTED_IMAGE_FORMAT",
        21,
    )
    assert error.message == "target_image: not an image"
    assert error.metadata == {"field": "target_image"}


def test_a_parameter_error_passes_through() -> None:
    sent = invalid_argument("INVALID_DET_PROB_THRESHOLD", "det_prob_threshold must be", field="x")
    error = translate(FakeRpcError(sent, grpc.StatusCode.INVALID_ARGUMENT), ["file"])
    assert (error.reason, error.compreface_code, error.message) == (
        "INVALID_DET_PROB_THRESHOLD",
        26,
        "det_prob_threshold must be",
    )


def test_anything_else_is_code_41_with_http_500() -> None:
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        error = translate(FakeRpcError(None, code), ["file"])
        assert (error.compreface_code, error.http_status) == (41, 500)
        assert "boom" not in error.message
    internal = ServiceError(grpc.StatusCode.INTERNAL, "INFERENCE_FAILED", "x", 41)
    assert translate(FakeRpcError(internal, grpc.StatusCode.INTERNAL), []).http_status == 500


async def test_the_embed_channel_balances_over_every_node_of_a_list() -> None:
    nodes = [Node("a"), Node("b")]
    ports = [(await node.start()).port for node in nodes]
    channel = GrpcEmbedClient.channel(",".join(f"127.0.0.1:{port}" for port in ports))
    try:
        await until_answering(channel, {"a", "b"})
    finally:
        await channel.close()
        for node in nodes:
            assert node.running is not None
            await stop_server(node.running, 0)
