"""Triton python-backend model: runs ``model.onnx`` beside this file with onnxruntime.

The same file serves every network of the repository: ``make models`` copies it to
``triton_models/*/1/model.py`` (tests/models checks the copies). ``initialize`` parses the
model config once: input and output names come from it, and the optional config parameter
``intra_op_threads`` (default 1) sets onnxruntime's thread count (pool threads never spin).
``execute`` runs all requests of a dynamic batch as one session call and returns one response
per request; a failure becomes an error inside each response.
"""

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """One onnxruntime session per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        """Parses the model config and opens the session (once per instance)."""
        config = json.loads(args["model_config"])
        self.name = config["name"]
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.outputs = [tensor["name"] for tensor in config["output"]]
        parameters = config.get("parameters") or {}
        threads = int(parameters.get("intra_op_threads", {}).get("string_value") or 1)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Pool threads (intra_op_threads > 1) must not spin while waiting for work: on the
        # 2 cores Triton shares with embed_svc, spinning doubled the time per call.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        graph_inputs = {tensor.name for tensor in self.session.get_inputs()}
        graph_outputs = {tensor.name for tensor in self.session.get_outputs()}
        if set(self.inputs) != graph_inputs or not set(self.outputs) <= graph_outputs:
            raise pb_utils.TritonModelException(
                f"{self.name}: config tensors {self.inputs} -> {self.outputs} do not match "
                f"model.onnx {sorted(graph_inputs)} -> {sorted(graph_outputs)}"
            )

    def execute(self, requests: list[Any]) -> list[Any]:
        """One InferenceResponse per request, from a single session call."""
        get = pb_utils.get_input_tensor_by_name
        try:
            feeds = [{name: get(r, name).as_numpy() for name in self.inputs} for r in requests]
            sizes = [len(feed[self.inputs[0]]) for feed in feeds]
            batch = {name: np.concatenate([feed[name] for feed in feeds]) for name in self.inputs}
            results = self.session.run(self.outputs, batch)
        except Exception as exc:
            error = pb_utils.TritonError(f"{self.name} inference failed: {type(exc).__name__}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses = []
        start = 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(value[start : start + size]))
                for name, value in zip(self.outputs, results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
