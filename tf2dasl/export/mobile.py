"""The mobile graph and its TFLite files: :class:`MobileModule` (normalised crops → whitened params + landmarks),
:class:`LandmarkHead` (the morphable model rescaled to fit float16) and :func:`export_tflite`.

TFLite outputs ``params_whitened`` ``(1, 62)`` and ``landmarks`` ``(1, 68, 3)`` crop pixels; raw parameters are
``params_whitened * std + mean`` with the 62 + 62 numbers in export.json's ``whitening`` (raw values reach 6e5,
beyond float16: the GPU delegate computes in half precision). The graph is written with GPU-delegate ops only
(checked offline by :func:`tf2dasl.export.tflite_lint.gpu_op_issues`) and converted from a SavedModel
(``from_saved_model``, builtin ops only): conversion from concrete functions keeps resource ops (NaN outputs).
The app normalises the crops (export.json's ``normalization``); a 4-channel model runs its two passes inside
the graph (the task model's :meth:`~tf2dasl.models.task.FaceTask.infer`), and its file has a second signature,
``with_map`` (normalised crops and a landmark map ``(1, S, S)`` → one pass with that map).
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..geometry import tf_ops
from ..geometry.conventions import get_convention
from ..geometry.morphable_model import NUM_LANDMARKS, NUM_PARAMS, NUM_POSE
from ..inference.crops import MAP_CHANNELS
from ..inference.export_dir import DEFAULT_SIGNATURE, MAP_SIGNATURE
from ..models.task import FaceTask
from .common import ExportError, hold, tf_variables_of
from .tflite_lint import RESOURCE_OPS, TfliteModel, gpu_check, parse_tflite, tflite_ops

TFLITE_BATCH = 1
#: GPU-delegate issues export.json lists per file (the first ones; :func:`~.tflite_lint.gpu_check` has them all)
LISTED_GPU_ISSUES = 20
#: the float variants this module converts (int8, full-integer, is :mod:`tf2dasl.export.quantize`'s)
QUANTIZATION = {"float32": "none", "float16": "float16 weights (GPU delegate recipe)"}
DELEGATES = ("XNNPACK (LiteRT's default CPU delegate; int8: its QS8 kernels); the GPU delegate for float32/float16 "
             "where gpu_compatible")
NOTES = {"params_whitened": "raw params = params_whitened * whitening.std + whitening.mean (in float32: raw values "
                            "reach 6e5, beyond float16)",
         "params": "raw 3DDFA parameters",
         "landmarks": "crop pixels, 0-based, y down",
         "maps": "landmark maps: -1, +1 at the 18 map points (tf2dasl.geometry.landmark_map)"}


class LandmarkHead(keras.layers.Layer):
    """Whitened params ``(N, 62)`` → 68 landmarks in crop pixels ``(N, 68, 3)``, safe in float16.

    The morphable model's numbers span 1e-7 … 6e5 (shape coefficients and the mean shape are ~1e5 in model
    units, the scaled rotation ~1e-4), beyond float16's range (6.5e4, TFLite's float16 weights and the GPU
    delegate's half-precision arithmetic). The whitening is folded into the bases and the model frame is
    shrunk by ``k``: ``shape' = k (u + W mean_c) + (k W std_c) pw_c`` and ``R' = (pw_R std_R + mean_R) / k`` —
    every weight and intermediate stays within ~1e-4 … 1e3. A fully-connected layer and element-wise ops only
    (no batched matmul), so TFLite's GPU delegate takes all of it. Weights, not constants: ``tf.constant``
    attributes break graph freezing.
    """

    SHRINK = 1e-3

    def __init__(self, mm, input_size: int, convention: str, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.input_size, self.convention = int(input_size), get_convention(convention)
        k = self.SHRINK
        mean, std = np.asarray(mm.param_mean, np.float64), np.asarray(mm.param_std, np.float64)
        W = np.concatenate([mm.w_shp_base, mm.w_exp_base], axis=1).astype(np.float64)  # (204, 50)
        u = k * (np.asarray(mm.u_base, np.float64) + W @ mean[NUM_POSE:])
        basis = k * W * std[None, NUM_POSE:]
        is_rot = np.ones(NUM_POSE)
        is_rot[3::4] = 0.0  # translation column of the row-major 3x4 matrix keeps its pixel units
        kvec = np.where(is_rot > 0, 1.0 / k, 1.0)

        def const(name, value):
            value = np.asarray(value, np.float32)
            return self.add_weight(name=name, shape=value.shape, initializer=keras.initializers.Constant(value),
                                   trainable=False, dtype="float32")

        self.pose_scale, self.pose_shift = const("pose_scale", std[:NUM_POSE] * kvec), const("pose_shift", mean[:NUM_POSE] * kvec)
        self.u, self.basis = const("u", u), const("basis", basis)

    def call(self, params_w):
        # TFLite's GPU delegate slices 3D/4D tensors only: work on (N, 1, 62), never slice a 2D tensor
        pw = tf.reshape(params_w, (-1, 1, NUM_PARAMS))
        pose = pw[:, :, :NUM_POSE] * self.pose_scale + self.pose_shift  # (N, 1, 12): [R' | t] row-major
        coeffs = tf.reshape(pw[:, :, NUM_POSE:NUM_PARAMS], (-1, NUM_PARAMS - NUM_POSE))
        flat = self.u[None, :] + tf.matmul(coeffs, self.basis, transpose_b=True)  # FULLY_CONNECTED, (N, 204)
        shape = tf.reshape(flat, (-1, NUM_LANDMARKS, 3))  # x, y, z interleaved
        xs, ys, zs = shape[:, :, 0:1], shape[:, :, 1:2], shape[:, :, 2:3]
        # (N, 68, 1) * (N, 1, 1) products only: broadcasting the GPU delegate supports
        rows = [xs * pose[:, :, 4 * r:4 * r + 1] + ys * pose[:, :, 4 * r + 1:4 * r + 2]
                + zs * pose[:, :, 4 * r + 2:4 * r + 3] + pose[:, :, 4 * r + 3:4 * r + 4] for r in range(3)]
        return tf_ops.model_to_crop(tf.concat(rows, axis=-1), self.input_size, self.convention)


class MobileModule(tf.Module):
    """The TFLite graph: normalised float32 crops ``(N, S, S, 3)`` NHWC → ``landmarks`` ``(N, 68, 3)`` crop pixels
    and ``params_whitened`` ``(N, 62)`` (``raw_params=False``: raw parameters reach 6e5, beyond float16) or
    ``params`` ``(N, 62)`` raw (``raw_params=True``). ``batch`` fixes the batch dimension (1 for mobile, None
    for any). A 4-channel model also has ``with_map(crops, maps (N, S, S))``: one pass with the given maps."""

    def __init__(self, model: FaceTask, batch: int | None = TFLITE_BATCH, raw_params: bool = False):
        super().__init__(name="tf2dasl_mobile")
        spec = model.spec
        self.spec, self.size, self.raw_params = spec, int(spec.input_size), bool(raw_params)
        hold(self, task=self.make_task(model))
        self.tf_variables = tf_variables_of(self.task)
        s = self.size
        crops = tf.TensorSpec([batch, s, s, 3], tf.float32, name="crops")
        self.serving_default = tf.function(self._call, input_signature=[crops])
        if spec.channels == MAP_CHANNELS:
            self.with_map = tf.function(self._call, input_signature=[
                crops, tf.TensorSpec([batch, s, s], tf.float32, name="maps")])

    def make_task(self, model: FaceTask) -> FaceTask:
        """The task model this graph calls: ``model``'s regressor and the float16-safe :class:`LandmarkHead` (the
        int8 graph, :class:`~tf2dasl.export.quantize.Int8Module`, swaps in its own preprocessor and regressor)."""
        spec = model.spec
        return FaceTask(spec, model.mm, regressor=model.regressor, landmark_head=LandmarkHead(
            model.mm, spec.input_size, spec.crop_convention, name="landmark_head"))

    @property
    def signatures(self) -> dict:
        """``{name: tf.function}``: ``serving_default``, and ``with_map`` for a 4-channel model."""
        return {name: getattr(self, name) for name in (DEFAULT_SIGNATURE, MAP_SIGNATURE) if hasattr(self, name)}

    def _call(self, crops, maps=None):
        params_w = self.task.infer(crops, maps)  # crops arrive normalised: the app normalises (export.json)
        out = {"landmarks": self.task.landmarks(params_w)}
        if self.raw_params:
            out["params"] = self.task.morphable.unwhiten(params_w)
        else:
            out["params_whitened"] = tf.identity(params_w)
        return out


def save_mobile(model, out_dir: Path, batch: int | None = TFLITE_BATCH) -> MobileModule:
    """The mobile graph as a SavedModel (the converter's input) in ``out_dir``."""
    module = MobileModule(model, batch=batch, raw_params=False)
    tf.saved_model.save(module, str(out_dir), signatures=module.signatures)
    return module


def convert_tflite(src_saved_model: Path, variants, signatures=(DEFAULT_SIGNATURE,)) -> dict[str, TfliteModel]:
    """The mobile SavedModel → ``{variant: TFLite flatbuffer, parsed}`` (float32, float16 weights),
    builtin ops only; an :class:`ExportError` when a conversion fails or keeps non-builtin/resource ops."""
    files = {}
    # one converter for all variants: the SavedModel is imported once, each convert() re-runs the passes
    conv = tf.lite.TFLiteConverter.from_saved_model(str(src_saved_model), signature_keys=list(signatures))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    for variant in variants:
        if variant not in QUANTIZATION:
            raise ExportError(f"unknown TFLite variant {variant!r}; use some of {', '.join(QUANTIZATION)}")
        conv.optimizations, conv.target_spec.supported_types = [], []
        if variant == "float16":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        try:
            content = conv.convert()
        except Exception as exc:  # conversion errors are long: keep the first line
            raise ExportError(f"TFLite conversion ({variant}) failed: {str(exc).strip().splitlines()[0]}") from None
        tfl = parse_tflite(content)
        bad = [o for o in tflite_ops(tfl) if o.startswith(("CUSTOM", "FLEX")) or o in RESOURCE_OPS]
        if bad:
            raise ExportError(f"TFLite conversion ({variant}) produced non-builtin or resource-variable ops {bad}")
        files[variant] = tfl
    return files


def file_entry(file_name: str, tfl: TfliteModel, quantization: str) -> dict:
    """export.json's description of one TFLite file: size, ops, the GPU-delegate verdict and its first issues, how
    it is quantised."""
    gpu_ok, issues, _ = gpu_check(tfl)
    return {"file": file_name, "bytes": len(tfl.content), "ops": tflite_ops(tfl), "gpu_compatible": gpu_ok,
            "gpu_issues": issues[:LISTED_GPU_ISSUES], "quantization": quantization}
