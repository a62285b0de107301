"""Service errors render as gRPC statuses with ErrorInfo and REST-edge metadata."""

import grpc
from google.rpc import error_details_pb2, status_pb2

from facegrid.errors import (
    COMPREFACE_CODE_KEY,
    HTTP_STATUS_KEY,
    ServiceError,
    error_info,
    invalid_argument,
    to_status,
)


def _details(status: grpc.Status) -> tuple[status_pb2.Status, error_details_pb2.ErrorInfo]:
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    rpc_status = status_pb2.Status.FromString(raw)
    info = error_details_pb2.ErrorInfo()
    rpc_status.details[0].Unpack(info)
    return rpc_status, info


def test_invalid_argument_carries_reason_and_compreface_code() -> None:
    status = to_status(invalid_argument("NO_FACE_DETECTED", "no face found", 28, field="file"))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    rpc_status, info = _details(status)
    assert rpc_status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert rpc_status.message == "no face found"
    assert info.reason == "NO_FACE_DETECTED"
    assert dict(info.metadata) == {"field": "file", "compreface_code": "28"}
    assert dict(status.trailing_metadata)[COMPREFACE_CODE_KEY] == "28"


def test_http_status_override_travels_in_metadata_and_error_info() -> None:
    error = ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION, "WRITES_BLOCKED", "migrating", 32, http_status=405
    )
    status = to_status(error)
    _, info = _details(status)
    assert info.metadata["http_status"] == "405"
    assert dict(status.trailing_metadata)[HTTP_STATUS_KEY] == "405"


class _FailedCall(grpc.RpcError):
    """A failed call as a client sees it: code, details and trailing metadata."""

    def __init__(self, status: grpc.Status, code: grpc.StatusCode | None = None) -> None:
        self._status = status
        self._code = code or status.code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._status.details

    def trailing_metadata(self):
        return self._status.trailing_metadata


def test_error_info_reads_back_what_to_status_sent() -> None:
    status = to_status(invalid_argument("NO_FACE_DETECTED", "no face found", 28, field="file"))
    info = error_info(_FailedCall(status))
    assert info is not None
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "NO_FACE_DETECTED",
        "facegrid.dev",
        {"field": "file", "compreface_code": "28"},
    )


def test_error_info_ignores_details_that_contradict_the_call() -> None:
    status = to_status(invalid_argument("NO_FACE_DETECTED", "no face found", 28))
    assert error_info(_FailedCall(status, grpc.StatusCode.INTERNAL)) is None
    assert error_info(grpc.RpcError()) is None
