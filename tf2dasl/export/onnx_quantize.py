"""The int8 ONNX file: ONNX Runtime's static quantisation (QDQ, per-channel int8 weights, uint8 activations) of
the direct graph (:func:`~tf2dasl.export.onnx_graph.face_graph`), calibrated on the same faces as the int8
TFLite file, with uint8 crops ``[N, 3, S, S]`` (NCHW, no normalisation) as its input.

The float graph it starts from is the int8-ready model of :mod:`.quantize` (the input's half level folded into the
first convolution, a 2DASL model's landmark map at half scale), so the input ``(x - Z) * scale`` is exactly the
uint8 crop under the quantisation ``(scale, Z)``: :data:`INPUT` and a 4-channel model's concatenated pass inputs
and maps are pinned to it (``TensorQuantOverrides``), and the input's ``QuantizeLinear`` is then removed so the
graph reads uint8 crops (:func:`uint8_input`). Only convolutions (with their ReLUs) are quantised
(:data:`OP_TYPES`): the global average pool, the fully-connected layer, the landmark decoding and the landmark map
stay float32, as in the int8 TFLite file. ONNX Runtime fuses each ``DequantizeLinear → Conv → QuantizeLinear`` into
its int8 convolution kernels (VNNI where the CPU has it).
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

from .common import ExportError
from .onnx_graph import INPUT, LAYOUT, ONNX_OPSET, face_graph
from .onnx_layers import UnsupportedLayer
from .quantize import MAP_INPUT_SCALE, input_quantization, int8_inputs, int8_ready_regressor

#: ONNX op types quantised (everything else stays float32); Concat: a 2DASL model's crop + map pass inputs
OP_TYPES = ("Conv", "Relu", "Concat")
#: calibration faces per ONNX Runtime call (the graph takes any batch; min/max ranges do not depend on it)
CALIBRATION_BATCH = 50
#: values pinned to the uint8 input's quantisation: the input, and a 2DASL model's landmark maps (empty and of the
#: first pass's landmarks, ±1/2 = ±64 levels) and the two concatenated pass inputs
PINNED = (INPUT, "empty_map", "landmark_map", "pass1_input", "pass2_input")
INPUT_NOTE = "uint8 crops, no normalisation (the input's quantisation is the model's)"
NOTE = ("static int8 QDQ (ONNX Runtime quantize_static: per-channel int8 weights, uint8 activations) of the "
        "convolutions; uint8 NCHW BGR crops in (no normalisation); float32 from the pooled feature on")


class _Reader:
    """onnxruntime's ``CalibrationDataReader`` protocol over calibration inputs ``(N, 3, S, S)``, in batches."""

    def __init__(self, x: np.ndarray):
        self.x, self.i = x, 0

    def get_next(self):
        if self.i >= len(self.x):
            return None
        self.i += CALIBRATION_BATCH
        return {INPUT: self.x[self.i - CALIBRATION_BATCH:self.i]}


@contextlib.contextmanager
def _root_warnings_off():
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def int8_ready_model(model):
    """A stand-in for ``model`` (``spec``, ``mm``, ``regressor``) with the int8-ready regressor (:mod:`.quantize`)."""
    return SimpleNamespace(spec=model.spec, mm=model.mm, regressor=int8_ready_regressor(model))


def uint8_input(proto, scale: float, zero_point: int):
    """The QDQ graph reading uint8 crops: its input's ``QuantizeLinear`` (float → uint8 with ``(scale,
    zero_point)``) removed and the input typed uint8, so the ``DequantizeLinear`` after it reads the crops."""
    g = proto.graph
    init = {t.name: t for t in g.initializer}
    quant = [n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == INPUT]
    if len(quant) != 1:
        raise ExportError(f"ONNX int8: expected one QuantizeLinear of {INPUT}, found {len(quant)}")
    q = quant[0]
    got_scale = float(numpy_helper.to_array(init[q.input[1]]))
    got_zp = int(numpy_helper.to_array(init[q.input[2]]))
    if got_scale != np.float32(scale) or got_zp != zero_point:
        raise ExportError(f"ONNX int8: {INPUT} was quantised with ({got_scale}, {got_zp}), not ({scale}, {zero_point})")
    for n in g.node:
        n.input[:] = [INPUT if v == q.output[0] else v for v in n.input]
    g.node.remove(q)
    g.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    return proto


def convert_onnx_int8(model, calibration) -> tuple[object, dict]:
    """``(onnx.ModelProto, details)``: the int8 ONNX graph of ``model``, calibrated on ``calibration`` (a
    :class:`~tf2dasl.data.calibration.CalibrationSet`)."""
    spec = model.spec
    scale, zero_point = input_quantization(spec)
    try:
        proto = face_graph(int8_ready_model(model), map_scale=MAP_INPUT_SCALE)
    except UnsupportedLayer as exc:
        raise ExportError(f"ONNX int8: the direct graph does not translate {exc}") from None
    present = {v for n in proto.graph.node for v in n.output} | {INPUT}
    pin = {"scale": np.array(scale, np.float32), "zero_point": np.array(zero_point, np.uint8)}
    pinned = {name: [pin] for name in PINNED if name in present}
    x = np.ascontiguousarray(int8_inputs(calibration.crops, spec).transpose(0, 3, 1, 2))
    with tempfile.TemporaryDirectory(prefix="tf2dasl_onnx_int8_") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, str(src))
        try:  # onnxruntime logs a pre-processing hint on the root logger: not for our users
            with contextlib.redirect_stdout(io.StringIO()), _root_warnings_off():
                quantize_static(str(src), str(dst), _Reader(x), quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=list(OP_TYPES), per_channel=True,
                                weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                                calibrate_method=CalibrationMethod.MinMax,
                                extra_options={"TensorQuantOverrides": pinned})
        except Exception as exc:
            raise ExportError(f"ONNX int8 quantisation failed: {str(exc).strip().splitlines()[0]}") from None
        q = onnx.load(str(dst))
    q = uint8_input(q, scale, zero_point)
    onnx.checker.check_model(q)
    return q, {"layout": LAYOUT, "opset": ONNX_OPSET, "quantization": NOTE,
               "input": {"dtype": "uint8", "scale": float(scale), "zero_point": int(zero_point)},
               "calibration": calibration.describe()}
