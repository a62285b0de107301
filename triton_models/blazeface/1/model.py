"""Triton python-backend model: BlazeFace (back camera) on onnxruntime.

Input ``input`` float32 [N, 3, 256, 256] RGB in [-1, 1]; outputs ``regressors`` [N, 896, 16] and
``classificators`` [N, 896, 1]. The requests of one dynamic batch run as one session call.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Runs model.onnx beside this file."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.input = config["input"][0]["name"]
        self.outputs = [output["name"] for output in config["output"]]
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("FACEGRID_ORT_THREADS", "1"))
        path = os.path.join(os.path.dirname(__file__), "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        try:
            results = self.session.run(self.outputs, {self.input: np.concatenate(batches)})
        except Exception as exc:
            error = pb_utils.TritonError(f"blazeface inference failed: {type(exc).__name__}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for batch in batches:
            end = start + len(batch)
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(value[start:end]))
                for name, value in zip(self.outputs, results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start = end
        return responses
