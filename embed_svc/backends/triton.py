"""Inference through NVIDIA Triton over gRPC (KServe v2) with ``tritonclient.grpc.aio``.

One long-lived client per process; every call carries an explicit timeout; gRPC errors are
translated here, once, into the backend errors of ``embed_svc.backends.base``. The channel
reconnects by itself with a short backoff, so the service recovers when Triton comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from embed_svc.backends.base import BackendError, BackendUnavailable, ModelUnavailable
from embed_svc.types import FloatArray, InputArray

#: gRPC codes (as tritonclient renders them) that mean "unreachable or too slow: retry".
_UNAVAILABLE_STATUSES = frozenset(
    {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED"}
)
#: Largest message in either direction, bytes (batches of face crops are large).
_MAX_MESSAGE_BYTES = 2**31 - 1


class TritonBackend:
    """An InferenceBackend over one Triton server."""

    def __init__(self, client: InferenceServerClient, timeout_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._batch_sizes: dict[str, int] = {}

    @classmethod
    async def connect(cls, url: str, timeout_s: float) -> TritonBackend:
        """Creates the client for ``url`` (host:port); does not wait for the server."""
        client = InferenceServerClient(
            url,
            channel_args=[
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.min_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 1000),
                ("grpc.keepalive_time_ms", 10_000),
                ("grpc.keepalive_timeout_ms", 5_000),
            ],
        )
        return cls(client, timeout_s)

    @property
    def name(self) -> str:
        """``triton``."""
        return "triton"

    async def infer(
        self, model: str, inputs: Mapping[str, InputArray], outputs: Sequence[str]
    ) -> dict[str, FloatArray]:
        """Runs ``model``; batches above its max_batch_size go as concurrent chunks."""
        total = len(next(iter(inputs.values())))
        limit = await self.max_batch_size(model)
        if limit <= 0 or total <= limit:
            return await self._infer_once(model, inputs, outputs)
        starts = range(0, total, limit)
        parts = await asyncio.gather(
            *(
                self._infer_once(model, {k: v[s : s + limit] for k, v in inputs.items()}, outputs)
                for s in starts
            )
        )
        return {name: np.concatenate([p[name] for p in parts]) for name in outputs}

    async def _infer_once(
        self, model: str, inputs: Mapping[str, InputArray], outputs: Sequence[str]
    ) -> dict[str, FloatArray]:
        request_inputs = []
        for tensor_name, array in inputs.items():
            contiguous = np.ascontiguousarray(array)
            request_input = InferInput(
                tensor_name, list(contiguous.shape), np_to_triton_dtype(contiguous.dtype)
            )
            request_input.set_data_from_numpy(contiguous)
            request_inputs.append(request_input)
        requested = [InferRequestedOutput(name) for name in outputs]
        try:
            result = await self._client.infer(
                model, request_inputs, outputs=requested, client_timeout=self._timeout_s
            )
        except InferenceServerException as exc:
            raise _translate(exc, model) from exc
        arrays: dict[str, FloatArray] = {}
        for name in outputs:
            value = result.as_numpy(name)
            if value is None:
                raise BackendError(f"model {model!r} returned no output {name!r}")
            arrays[name] = value.astype(np.float32, copy=False)
        return arrays

    async def ready_models(self) -> frozenset[str]:
        """Models the repository index lists as READY."""
        try:
            index = await self._client.get_model_repository_index(
                as_json=True, client_timeout=self._timeout_s
            )
        except InferenceServerException as exc:
            raise _translate(exc, "") from exc
        return frozenset(
            entry["name"] for entry in index.get("models", []) if entry.get("state") == "READY"
        )

    async def max_batch_size(self, model: str) -> int:
        """The model's ``max_batch_size`` from its Triton configuration (cached)."""
        cached = self._batch_sizes.get(model)
        if cached is not None:
            return cached
        try:
            response = await self._client.get_model_config(
                model, as_json=True, client_timeout=self._timeout_s
            )
        except InferenceServerException as exc:
            raise _translate(exc, model) from exc
        value = int(response.get("config", {}).get("max_batch_size", 0))
        self._batch_sizes[model] = value
        return value

    async def close(self) -> None:
        """Closes the gRPC channel."""
        await self._client.close()


def _translate(exc: InferenceServerException, model: str) -> BackendError:
    status = exc.status() or ""
    message = exc.message() or ""
    if status in _UNAVAILABLE_STATUSES:
        return BackendUnavailable(f"Triton is unavailable ({status.removeprefix('StatusCode.')})")
    if status == "StatusCode.NOT_FOUND" or "unknown model" in message or "not ready" in message:
        return ModelUnavailable(model)
    return BackendError(f"Triton failed to run {model!r} ({status.removeprefix('StatusCode.')})")
