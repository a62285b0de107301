"""Makes the batch dimension of a converted ONNX graph dynamic (for Triton's batching).

tflite2onnx writes batch 1 into the graph inputs/outputs and into Reshape target shapes; the
inputs/outputs get a symbolic ``N`` and every Reshape whose constant target starts with 1 gets
0 there (ONNX: copy that dimension from the input, i.e. keep the batch; -1 may already be
used by another dimension). Nothing else in BlazeFace depends on the batch size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper


def make_batch_dynamic(source: Path, target: Path) -> None:
    """Writes ``source`` with a dynamic leading dimension to ``target``."""
    model = onnx.load(str(source))
    graph = model.graph
    for value in [*graph.input, *graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    initializers = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        shape_init = initializers.get(node.input[1])
        if shape_init is None:
            continue
        shape = numpy_helper.to_array(shape_init).copy()
        if shape.size and shape[0] == 1:
            shape[0] = 0
            shape_init.CopyFrom(numpy_helper.from_array(shape.astype(np.int64), shape_init.name))
    del graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
