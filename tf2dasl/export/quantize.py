"""Full-integer int8 TFLite: uint8 crops in, int8 activations through the whole backbone (XNNPACK's QS8 kernels),
float32 out of the pooled feature onward (the last fully-connected layer, the landmark head, a 2DASL model's
landmark map).

**The input is exact.** A model normalises ``(x - mean) * scale`` (3DDFA_V2: ``(x - 127.5) / 128``). With the
uint8 input's zero point ``Z = round(mean)`` (128) and its scale ``scale`` (1/128), every pixel ``x`` is exactly
the int8 value ``x - Z``, i.e. the real value ``xs = (x - Z) * scale``; the network wants ``xs + (Z - mean) *
scale``, so that constant (half a level, 1/256) is folded into the first convolution (its bias, or the moving mean
of the BatchNorm after it): :func:`int8_ready_regressor`. The fold is exact except where the first convolution
reads zero padding: a padded pixel is worth ``Z`` (128) instead of ``mean`` (127.5), 1/256 in normalised units
(tested: :data:`FOLD_TOLERANCE`).

**A 2DASL model's landmark map** (-1 background, +1 at 18 points, 0 in the zero padding) enters the first
convolution as ``map * MAP_INPUT_SCALE`` (±1/2 = ±64 levels of the input's 1/128 scale) with that layer's map
weights divided by :data:`MAP_INPUT_SCALE`: crops and map share one exact quantisation, so the concatenation is
free and lossless. The map itself is built in float from the first pass's float landmarks.

**Conversion** uses the TFLite converter's post-training quantisation (a representative dataset of calibration
faces, :mod:`tf2dasl.data.calibration`; per-channel int8 weights, min/max activation ranges) in two steps: calibration
(``_experimental_calibrate_only``), then TF's MLIR quantiser with a uint8 input and the float part denylisted —
what ``tf.lite.experimental.QuantizationDebugger``'s selective quantisation does, plus the uint8 input type the
debugger does not expose. The int8 part is everything the graph builds under the name scope :data:`INT8_SCOPE`
(the input, the map concatenation, the backbone) except :data:`FLOAT_OPS` (the pooled feature). The input's
range is pinned with a ``FakeQuant`` op, so the uint8 input is ``(scale, Z)`` whatever the calibration faces'
pixels span (checked after conversion).
"""
from __future__ import annotations

import contextlib
import io
import re
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
# TF's MLIR quantiser with a denylist and an input type: no public API takes both (the public converter quantises
# everything or nothing, and QuantizationDebugger exposes the denylist but not the uint8 input)
from tensorflow.lite.python import convert as tfl_convert

from ..errors import UserError
from ..models.preprocessor import CropPreprocessor
from ..models.regressor import Regressor
from ..models.task import FaceTask
from ..quiet import native_stderr_hidden
from .common import ExportError
from .mobile import TFLITE_BATCH, LandmarkHead, MobileModule, file_entry
from .tflite_lint import TfliteModel, op_outputs, parse_tflite

#: Name scope of the graph part that runs in int8 (the input, the map concatenation, the backbone).
INT8_SCOPE = "int8"
#: TFLite ops inside :data:`INT8_SCOPE` that stay float32: the backbone's global average pool. Quantising the
#: pooled feature alone costs 0.16 px of vertex distance against the float model on calibration faces (the
#: largest single activation cost measured); the float mean reads 4x4 int8 values per channel: negligible.
FLOAT_OPS = ("MEAN",)
#: The landmark map's factor at the int8 input (module docstring): ±1 becomes ±64 levels of 1/128.
MAP_INPUT_SCALE = 0.5
#: uint8 levels
UINT8_MAX = 255
#: :func:`int8_ready_regressor`: largest whitened-parameter difference from the original regressor, in float (the
#: padded border reads 128 instead of 127.5; measured on mb05: 6e-4 on 16 AFLW training crops, 1.2e-3 on 32
#: AFLW2000-3D crops). Whitened parameters are ~N(0, 1): int8 itself moves them by ~2e-2 on average.
FOLD_TOLERANCE = 5e-3
TFLITE_NOTE = ("full-integer int8: uint8 BGR crops (no normalisation; the input's quantisation is the model's), "
               "int8 per-channel weights and int8 activations through the backbone (XNNPACK QS8 kernels), float32 "
               "from the pooled feature on (last fully-connected layer, landmark head, landmark map)")


def input_quantization(spec) -> tuple[float, int]:
    """``(scale, zero_point)`` of the uint8 crops input: the model's ``norm_scale`` and ``round(norm_mean)``."""
    zero_point = int(np.floor(float(spec.norm_mean) + 0.5))
    if not 0 <= zero_point <= UINT8_MAX or float(spec.norm_scale) <= 0:
        raise ExportError(f"int8 export: the normalisation (x - {spec.norm_mean}) * {spec.norm_scale} has no uint8 "
                          "quantisation (its mean must lie in 0..255 and its scale be positive)")
    return float(spec.norm_scale), zero_point


def int8_inputs(crops: np.ndarray, spec) -> np.ndarray:
    """uint8 crops ``(B, S, S, 3)`` → the float graph's input ``(x - Z) * scale`` (what the uint8 input means)."""
    scale, zero_point = input_quantization(spec)
    return ((np.asarray(crops, np.float32) - zero_point) * np.float32(scale)).astype(np.float32)


def _first_conv(backbone):
    """The backbone's first convolution (after zero padding only) and the BatchNorm after it (None: it has a bias)."""
    layers = [lay for lay in backbone.layers if not isinstance(lay, (keras.layers.InputLayer,
                                                                       keras.layers.ZeroPadding2D))]
    conv = layers[0] if layers else None
    if type(conv) is not keras.layers.Conv2D or conv.groups != 1:
        raise ExportError(f"int8 export: {backbone.name} starts with {type(conv).__name__}, not a convolution; "
                          "the input's half level cannot be folded into it")
    if conv.use_bias:
        return conv, None
    bn = layers[1]
    if not isinstance(bn, keras.layers.BatchNormalization) or bn.input is not conv.output or not bn.center:
        raise ExportError(f"int8 export: {conv.name} has no bias and no BatchNorm after it to fold the input's half "
                          "level into")
    return conv, bn


def int8_ready_regressor(model):
    """A copy of ``model.regressor`` for the int8 input (module docstring): the input's offset ``(Z - mean) *
    scale`` folded into the first convolution, a 4-channel model's map weights divided by :data:`MAP_INPUT_SCALE`.
    Its input: ``int8_inputs(crops)`` [+ ``map * MAP_INPUT_SCALE``]."""
    spec = model.spec
    scale, zero_point = input_quantization(spec)
    levels = MAP_INPUT_SCALE / scale  # the map's ±1 as int8 levels of the input's quantisation
    if spec.channels == 4 and (levels != round(levels) or levels > min(zero_point, UINT8_MAX - zero_point)):
        raise ExportError(f"int8 export: the landmark map at ±{MAP_INPUT_SCALE} is not a whole number of the input's "
                          f"levels ({scale}, zero point {zero_point}) within its range")
    offset = (zero_point - float(spec.norm_mean)) * scale
    reg = Int8Regressor(spec.backbone, spec.width, spec.input_size, spec.channels, spec.num_params, name="regressor")
    reg.build()
    reg.set_weights(model.regressor.get_weights())
    conv, bn = _first_conv(reg.backbone)
    weights = conv.get_weights()
    kernel = np.asarray(weights[0], np.float64)  # (kh, kw, cin, cout)
    shift = offset * kernel[:, :, :3].sum(axis=(0, 1, 2))  # the colour channels only: the map is exact
    if spec.channels == 4:
        kernel[:, :, 3:] /= MAP_INPUT_SCALE
    weights[0] = kernel.astype(np.float32)
    if bn is None:
        weights[1] = (weights[1] + shift).astype(np.float32)
    else:
        # BN(y + shift) == BN'(y) for BN' = BN with its moving mean lowered by shift
        bw = bn.get_weights()
        i = [w.path.split("/")[-1] for w in bn.weights].index("moving_mean")
        bw[i] = (bw[i] - shift).astype(np.float32)
        bn.set_weights(bw)
    conv.set_weights(weights)
    return reg


class Int8InputPreprocessor(CropPreprocessor):
    """The regressor input of the int8 graph: crops arrive as ``(x - Z) * scale`` (the uint8 input's meaning); a
    4-channel model's map joins at :data:`MAP_INPUT_SCALE`; the result is pinned to the input's quantisation."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        scale, zero_point = input_quantization(self)
        self.qmin, self.qmax = -zero_point * scale, (UINT8_MAX - zero_point) * scale

    def with_map(self, x, maps=None):
        with tf.name_scope(INT8_SCOPE):
            if self.channels == 4:
                maps = self.empty_map(x) if maps is None else tf.cast(maps, x.dtype)
                x = tf.concat([x, maps[..., None] * MAP_INPUT_SCALE], axis=-1)
            return tf.quantization.fake_quant_with_min_max_args(x, min=self.qmin, max=self.qmax)


class Int8Regressor(Regressor):
    """A regressor whose backbone is built under :data:`INT8_SCOPE` (its fully-connected head outside)."""

    def call_with_features(self, x, training=None):
        with tf.name_scope(INT8_SCOPE):
            feat = self.backbone(x, training=training)
        return self.head(feat), feat


class Int8Module(MobileModule):
    """The float graph the int8 TFLite file is quantised from: ``(x - Z) * scale`` crops ``(1, S, S, 3)`` →
    ``landmarks`` and ``params_whitened``, like :class:`~tf2dasl.export.mobile.MobileModule`."""

    def make_task(self, model: FaceTask) -> FaceTask:
        spec = model.spec
        return FaceTask(spec, model.mm, regressor=int8_ready_regressor(model),
                        preprocessor=Int8InputPreprocessor.from_spec(spec, name="preprocessor"),
                        landmark_head=LandmarkHead(model.mm, spec.input_size, spec.crop_convention,
                                                   name="landmark_head"))


# ============================================================================ conversion
def float_nodes(calibrated: bytes) -> list[str]:
    """The op outputs the quantiser leaves in float: everything outside :data:`INT8_SCOPE`, and :data:`FLOAT_OPS`."""
    scope = re.compile(rf"^{INT8_SCOPE}(_\d+)?/")  # TF makes a reused scope unique: int8, int8_1, ...
    return [t for op, t, _ in op_outputs(calibrated)
            if op in FLOAT_OPS or not any(scope.match(p) for p in t.split(";"))]


def convert_tflite_int8(model, calibration, workdir: Path) -> TfliteModel:
    """The full-integer int8 TFLite flatbuffer of ``model``, parsed (module docstring), calibrated on ``calibration``
    (a :class:`~tf2dasl.data.calibration.CalibrationSet`); ``workdir``: an empty folder for the float SavedModel."""
    module = Int8Module(model, batch=TFLITE_BATCH)
    src = Path(workdir) / "int8_float_graph"
    tf.saved_model.save(module, str(src), signatures={"serving_default": module.serving_default})
    x = int8_inputs(calibration.crops, model.spec)
    conv = tf.lite.TFLiteConverter.from_saved_model(str(src), signature_keys=["serving_default"])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ({"crops": x[i:i + 1]} for i in range(len(x)))
    # step 1 of QuantizationDebugger's selective quantisation; no public flag calibrates without quantising
    conv._experimental_calibrate_only = True  # noqa: SLF001
    try:  # the quantiser prints its settings from C++: hidden (replayed if it fails)
        with contextlib.redirect_stdout(io.StringIO()), native_stderr_hidden():
            calibrated = conv.convert()
            content = tfl_convert.mlir_quantize(calibrated, input_data_type=tf.uint8,
                                                denylisted_nodes=float_nodes(calibrated))
    except Exception as exc:  # conversion errors are long: keep the first line
        raise ExportError(f"TFLite conversion (int8) failed: {str(exc).strip().splitlines()[0]}") from None
    check_input(content, model.spec)
    return parse_tflite(content)


def tflite_input(content: bytes) -> dict:
    """The ``crops`` input of a TFLite flatbuffer as LiteRT reads it: dtype and ``(scale, zero_point)``."""
    d = Interpreter(model_content=content).get_signature_runner().get_input_details()["crops"]
    scale, zero_point = d["quantization"]
    return {"dtype": np.dtype(d["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}


def check_input(content: bytes, spec) -> None:
    """An :class:`ExportError` unless the file's input is uint8 with the model's own quantisation."""
    got = tflite_input(content)
    scale, zero_point = input_quantization(spec)
    if got["dtype"] != "uint8" or got["scale"] != np.float32(scale) or got["zero_point"] != zero_point:
        raise ExportError(f"TFLite conversion (int8): the input became {got}, not uint8 with scale {scale} and zero "
                          f"point {zero_point}")


def xnnpack_partition(content: bytes) -> dict:
    """Which ops of a TFLite flatbuffer XNNPACK (LiteRT's default CPU delegate) takes: ``{"delegated": {op: n},
    "not_delegated": {op: n}, "partitions": k}``.

    LiteRT replaces each delegated partition by one ``DELEGATE`` node whose inputs and outputs are the tensors
    crossing its border. An op is delegated when an output of it leaves through a delegate's outputs, not when one
    enters a delegate's inputs; otherwise it is delegated when all its consumers are (ops taken in reverse order).
    """
    with native_stderr_hidden():
        it = Interpreter(model_content=content, num_threads=1)
        it.allocate_tensors()
    ops = it._get_ops_details()  # noqa: SLF001 - LiteRT exposes the node list only this way
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    nodes = [o for o in ops if o["op_name"] != "DELEGATE"]
    d_in = {int(t) for o in delegates for t in o["inputs"]}
    d_out = {int(t) for o in delegates for t in o["outputs"]}
    consumers: dict[int, list[int]] = {}
    for o in nodes:
        for t in o["inputs"]:
            consumers.setdefault(int(t), []).append(o["index"])
    delegated: dict[int, bool] = {}
    for o in reversed(nodes):
        outs = {int(t) for t in o["outputs"]}
        if outs & d_out:
            delegated[o["index"]] = True
        elif outs & d_in:
            delegated[o["index"]] = False
        else:
            cons = [c for t in outs for c in consumers.get(t, [])]
            delegated[o["index"]] = bool(cons) and all(delegated.get(c, False) for c in cons)
    count = lambda flag: dict(sorted(Counter(o["op_name"] for o in nodes if delegated[o["index"]] is flag).items()))  # noqa: E731
    return {"delegated": count(True), "not_delegated": count(False), "partitions": len(delegates)}


def int8_entry(tfl: TfliteModel, file_name: str, calibration) -> dict:
    """export.json's description of the int8 TFLite file (:func:`~tf2dasl.export.mobile.file_entry`, and what the
    int8 file adds: its input's quantisation, the ops by the type they compute in, what XNNPACK runs)."""
    int8_ops, float_ops = int8_and_float_ops(tfl)
    return {**file_entry(file_name, tfl, TFLITE_NOTE), "input": tflite_input(tfl.content),
            "int8_ops": int8_ops, "float_ops": float_ops, "xnnpack": xnnpack_partition(tfl.content),
            "calibration": calibration.describe()}


def int8_and_float_ops(tfl: bytes | TfliteModel) -> tuple[dict, dict]:
    """``({op: n} computing in int8, {op: n} computing in float32)``, by the type of each op's first output."""
    int8, flt = Counter(), Counter()
    for name, _, ttype in op_outputs(tfl):
        (int8 if ttype in ("INT8", "UINT8") else flt)[name] += 1
    return dict(sorted(int8.items())), dict(sorted(flt.items()))


def require_calibration(calibration, what: str) -> None:
    """A :class:`UserError` naming the fix when an int8 artifact is asked for without calibration faces."""
    if calibration is None or not len(calibration.crops):
        raise UserError(f"{what} needs calibration faces: pass --calibration DIR (AFLW crops or 300-W images with "
                        ".pts, e.g. ../shared/data/aflw_wild), or leave int8 out (--no-int8)")
