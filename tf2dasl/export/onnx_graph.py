"""The ONNX file: the mobile graph with raw parameters and a free batch dimension, converted by tf2onnx.

Input ``crops`` float32 ``[N, S, S, 3]`` NHWC, normalised (the app normalises, export.json's ``normalization``);
outputs ``params`` ``(N, 62)`` raw and ``landmarks`` ``(N, 68, 3)`` crop pixels. A 4-channel model runs its two
passes inside the graph.
"""
from __future__ import annotations

import contextlib
import io

import tensorflow as tf

ONNX_OPSET = 17
NOTES = {"params": "raw 3DDFA parameters", "landmarks": "crop pixels, 0-based, y down"}


def convert_onnx(model, opset: int = ONNX_OPSET):
    """The model's ONNX graph (an ``onnx.ModelProto``, checked) and the converter's name."""
    import logging

    import tf2onnx

    from .mobile import MobileModule

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    module = MobileModule(model, batch=None, raw_params=True)
    s = model.spec.input_size
    with contextlib.redirect_stdout(io.StringIO()):
        proto, _ = tf2onnx.convert.from_function(
            module.serving_default, input_signature=[tf.TensorSpec([None, s, s, 3], tf.float32, name="crops")],
            opset=opset)
    return rename_io(proto), f"tf2onnx {tf2onnx.__version__}"


def rename_io(proto):
    """tf2onnx names graph outputs after TF tensors (``Identity:0``): name them ``params`` and ``landmarks``."""
    import onnx

    g = proto.graph
    rename = {}
    for o in g.output:
        shape = [d.dim_value for d in o.type.tensor_type.shape.dim]
        rename[o.name] = "landmarks" if len(shape) == 3 else "params"
    for i in g.input:
        if i.name != "crops":
            rename[i.name] = "crops"
    for coll in (g.input, g.output):
        for v in coll:
            v.name = rename.get(v.name, v.name)
    for node in g.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    onnx.checker.check_model(proto)
    return proto
