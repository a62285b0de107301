"""The repository served by a real tritonserver (PyPI nvidia-pytriton, python backend): every
model loads and answers over gRPC with the outputs of onnxruntime in this process."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from models import build
from models.verify import probe_images, session
from tests.helpers.triton import TritonProcess, running_triton
from tests.models.face_chips import Face, aligned_112, box_crop

pytestmark = pytest.mark.integration

OUTPUTS = {
    "blazeface": ["regressors", "classificators"],
    "dlib_resnet": ["embedding"],
    "faceres_deep": ["age", "gender", "descriptor"],
    "mobileface": ["embedding"],
}


@pytest.fixture(scope="module")
def triton(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonProcess]:
    with running_triton(repository, tmp_path_factory.mktemp("triton")) as server:
        yield server


@pytest.fixture(scope="module")
def inputs(faces: list[Face]) -> dict[str, np.ndarray]:
    """A batch of 3 real inputs per model (uint8 NHWC RGB)."""
    three = faces[:3]
    return {
        "blazeface": probe_images(3, 256, seed=8).astype(np.uint8),
        "dlib_resnet": np.stack([face.chip for face in three]),
        "faceres_deep": np.stack([box_crop(face, 224) for face in three]),
        "mobileface": np.stack([aligned_112(face) for face in three]),
    }


def _infer(url: str, model: str, batch: np.ndarray) -> list[np.ndarray]:
    client = grpcclient.InferenceServerClient(url)
    try:
        tensor = grpcclient.InferInput("input", list(batch.shape), np_to_triton_dtype(batch.dtype))
        tensor.set_data_from_numpy(batch)
        wanted = [grpcclient.InferRequestedOutput(name) for name in OUTPUTS[model]]
        result = client.infer(model, [tensor], outputs=wanted, client_timeout=60)
        return [result.as_numpy(name) for name in OUTPUTS[model]]
    finally:
        client.close()


@pytest.mark.parametrize("model", build.MODELS)
def test_model_answers_like_onnxruntime_in_process(
    triton: TritonProcess, inputs: dict[str, np.ndarray], model: str
) -> None:
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    assert client.is_model_ready(model)
    client.close()
    batch = inputs[model]
    served = _infer(triton.grpc_url, model, batch)
    local = session(build.onnx_file(build.TRITON_MODELS, model)).run(
        OUTPUTS[model], {"input": batch}
    )
    for name, got, want in zip(OUTPUTS[model], served, local, strict=True):
        assert got.shape == want.shape, name
        print(f"{model}.{name}: max |triton - in-process| {np.abs(got - want).max():.1e}")
        np.testing.assert_allclose(
            got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max()))
        )


def test_concurrent_requests_each_get_their_own_rows(
    triton: TritonProcess, inputs: dict[str, np.ndarray]
) -> None:
    chips = inputs["dlib_resnet"]
    requests = [chips[:1], chips[1:3], chips, chips[2:], chips[:2], chips[1:2]] * 2
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        answers = list(
            pool.map(lambda batch: _infer(triton.grpc_url, "dlib_resnet", batch)[0], requests)
        )
    local = session(build.onnx_file(build.TRITON_MODELS, "dlib_resnet"))
    for batch, answer in zip(requests, answers, strict=True):
        np.testing.assert_allclose(answer, local.run(["embedding"], {"input": batch})[0], atol=1e-5)
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    stats = client.get_inference_statistics("dlib_resnet", as_json=True)["model_stats"][0]
    client.close()
    count, executions = stats["inference_count"], stats["execution_count"]
    print(f"dlib_resnet: {count} inferences in {executions} executions")
    assert int(count) >= sum(len(b) for b in requests)


def test_a_wrong_input_shape_is_refused(triton: TritonProcess) -> None:
    with pytest.raises(InferenceServerException):
        _infer(triton.grpc_url, "dlib_resnet", np.zeros((1, 100, 100, 3), np.uint8))


def test_a_float32_input_is_refused(triton: TritonProcess) -> None:
    """A client still sending the float32 tensors of before gets an error, not wrong faces."""
    with pytest.raises(InferenceServerException, match=r"(?i)data.?type|dtype|FP32"):
        _infer(triton.grpc_url, "dlib_resnet", np.zeros((1, 150, 150, 3), np.float32))
