"""Triton python-backend model: dlib's face recognition ResNet (128-d) on onnxruntime.

Input ``input`` float32 [N, 150, 150, 3]: dlib face chips, RGB 0..255; output ``embedding``
float32 [N, 128] (dlib's raw descriptors; embed_svc L2-normalises). ``model.onnx`` beside this
file is made by `make models` (models/dlib_onnx.py) from the .dat of PyPI
face-recognition-models==0.3.0; the graph subtracts dlib's mean and scales itself. The requests
of one dynamic batch run as one session call.
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
        self.output = config["output"][0]["name"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("FACEGRID_ORT_THREADS", "1"))
        path = os.path.join(os.path.dirname(__file__), "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        try:
            batch = np.concatenate(batches).astype(np.float32, copy=False)
            (embeddings,) = self.session.run([self.output], {self.input: batch})
        except Exception as exc:
            error = pb_utils.TritonError(f"dlib_resnet inference failed: {type(exc).__name__}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for batch in batches:
            end = start + len(batch)
            tensor = pb_utils.Tensor(self.output, np.ascontiguousarray(embeddings[start:end]))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            start = end
        return responses
