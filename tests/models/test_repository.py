"""The model repository reviewed like a proto: configs against the ONNX graphs, the shared
python-backend ``model.py`` (with a stand-in for Triton's ``triton_python_backend_utils``), and
the GPU variant."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import tritonclient.grpc.model_config_pb2 as mc
from google.protobuf import text_format

from models import build, gpu_repository
from models.verify import session


def config(repository: Path, model: str) -> Any:
    """The parsed config.pbtxt."""
    text = (repository / model / "config.pbtxt").read_text()
    return text_format.Parse(text, mc.ModelConfig())


def signature(tensors: Any) -> dict[str, tuple[str, list[int]]]:
    """Config tensors as name -> (data type, dims)."""
    return {t.name: (mc.DataType.Name(t.data_type), list(t.dims)) for t in tensors}


#: ONNX element types -> Triton data types (those the repository uses).
TRITON_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.UINT8: "TYPE_UINT8"}


def onnx_signature(values: Any) -> dict[str, tuple[str, list[int]]]:
    """ONNX graph values as name -> (data type, dims after a symbolic batch dimension)."""
    result = {}
    for value in values:
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param, f"{value.name}: batch dimension is not dynamic"
        kind = TRITON_TYPES[value.type.tensor_type.elem_type]
        result[value.name] = (kind, [d.dim_value for d in dims[1:]])
    return result


@pytest.mark.integration
@pytest.mark.parametrize("model", build.MODELS)
def test_config_matches_the_onnx_graph(repository: Path, model: str) -> None:
    cfg = config(repository, model)
    graph = onnx.load(str(build.onnx_file(repository, model)), load_external_data=False).graph
    assert cfg.name == model and cfg.backend == "python"
    assert cfg.max_batch_size >= 8 and cfg.HasField("dynamic_batching")
    assert [g.kind for g in cfg.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    assert signature(cfg.input) == onnx_signature(graph.input)
    assert signature(cfg.output) == onnx_signature(graph.output)
    # embed_svc sends uint8 pixels (NHWC RGB) to every model and reads float32 outputs.
    assert [kind for kind, _ in signature(cfg.input).values()] == ["TYPE_UINT8"]
    assert signature(cfg.input)["input"][1][-1] == 3
    assert {kind for kind, _ in signature(cfg.output).values()} == {"TYPE_FP32"}


@pytest.mark.integration
def test_every_model_uses_the_same_model_py(repository: Path) -> None:
    texts = {(repository / m / "1" / "model.py").read_text() for m in build.MODELS}
    assert len(texts) == 1
    assert sorted(p.name for p in repository.iterdir() if p.is_dir()) == sorted(build.MODELS)


@pytest.mark.integration
@pytest.mark.parametrize("model", build.MODELS)
def test_gpu_variant_has_the_same_tensors_on_the_onnxruntime_backend(
    repository: Path, model: str
) -> None:
    cpu, gpu = config(repository, model), config(build.GPU_REPOSITORY, model)
    assert gpu.backend == "onnxruntime"
    assert [g.kind for g in gpu.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert (gpu.input, gpu.output, gpu.max_batch_size) == (
        cpu.input,
        cpu.output,
        cpu.max_batch_size,
    )
    assert build.fingerprint(build.onnx_file(build.GPU_REPOSITORY, model)) == build.EXPECTED[model]
    assert not (build.GPU_REPOSITORY / model / "1" / "model.py").exists()


def test_gpu_config_refuses_an_unexpected_config() -> None:
    with pytest.raises(ValueError):
        gpu_repository.gpu_config('name: "x"\nbackend: "onnxruntime"\n')


# --- model.py with a stand-in for triton_python_backend_utils --------------------------------


class _Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class _Response:
    def __init__(self, output_tensors: list[_Tensor], error: _Error | None = None) -> None:
        self.output_tensors, self.error = output_tensors, error


class _Error:
    def __init__(self, message: str) -> None:
        self.text = message


class _ModelException(Exception):
    pass


@pytest.fixture
def model_py(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """triton_models/*/1/model.py imported against the stand-in utilities."""
    utils = types.ModuleType("triton_python_backend_utils")
    utils.Tensor = _Tensor  # type: ignore[attr-defined]
    utils.InferenceResponse = _Response  # type: ignore[attr-defined]
    utils.TritonError = _Error  # type: ignore[attr-defined]
    utils.TritonModelException = _ModelException  # type: ignore[attr-defined]
    utils.get_input_tensor_by_name = lambda request, name: request.get(name)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", utils)
    path = build.TRITON_MODELS / "mobileface" / "1" / "model.py"
    spec = importlib.util.spec_from_file_location("facegrid_triton_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _initialized(model_py: types.ModuleType, repository: Path, **changes: Any) -> Any:
    cfg = json.loads(
        json.dumps(
            {
                "name": "mobileface",
                "input": [
                    {"name": "input", "data_type": "TYPE_UINT8", "dims": ["112", "112", "3"]}
                ],
                "output": [{"name": "embedding", "data_type": "TYPE_FP32", "dims": ["256"]}],
                "parameters": {"intra_op_threads": {"string_value": "2"}},
            }
        )
    )
    cfg.update(changes)
    model = model_py.TritonPythonModel()
    model.initialize(
        {"model_config": json.dumps(cfg), "model_repository": str(repository / "mobileface")}
    )
    return model


@pytest.mark.integration
def test_model_py_answers_each_request_of_a_batch_with_its_own_rows(
    repository: Path, model_py: types.ModuleType
) -> None:
    model = _initialized(model_py, repository)
    rng = np.random.default_rng(7)
    inputs = [rng.integers(0, 256, (n, 112, 112, 3), dtype=np.uint8) for n in (1, 3, 2)]
    responses = model.execute([{"input": _Tensor("input", x)} for x in inputs])
    assert len(responses) == 3
    reference = session(build.onnx_file(repository, "mobileface"))
    for x, response in zip(inputs, responses, strict=True):
        assert response.error is None
        (tensor,) = response.output_tensors
        assert tensor.name() == "embedding" and tensor.as_numpy().shape == (len(x), 256)
        np.testing.assert_allclose(
            tensor.as_numpy(), reference.run(["embedding"], {"input": x})[0], atol=1e-5
        )


@pytest.mark.integration
def test_model_py_puts_a_failure_inside_every_response(
    repository: Path, model_py: types.ModuleType
) -> None:
    model = _initialized(model_py, repository)
    good = np.zeros((1, 112, 112, 3), np.uint8)
    wrong = np.zeros((1, 100, 100, 3), np.uint8)
    responses = model.execute(
        [{"input": _Tensor("input", good)}, {"input": _Tensor("input", wrong)}]
    )
    assert len(responses) == 2
    for response in responses:
        assert (
            response.output_tensors == [] and "mobileface inference failed" in response.error.text
        )


@pytest.mark.integration
def test_model_py_refuses_a_config_that_does_not_match_the_graph(
    repository: Path, model_py: types.ModuleType
) -> None:
    with pytest.raises(_ModelException, match="do not match"):
        _initialized(
            model_py,
            repository,
            output=[{"name": "features", "data_type": "TYPE_FP32", "dims": ["256"]}],
        )


@pytest.mark.integration
def test_model_py_pool_threads_do_not_spin(repository: Path, model_py: types.ModuleType) -> None:
    options = _initialized(model_py, repository).session.get_session_options()
    assert options.intra_op_num_threads == 2
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        assert options.get_session_config_entry(key) == "0"
