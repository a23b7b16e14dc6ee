"""Export a model directory for deployment: SavedModel (TF Serving), TFLite (mobile, GPU delegate) and ONNX.

Layout of ``EXPORT_DIR`` (``NAME`` = the model spec's name, ``V`` = ``--version``, default 1)::

    EXPORT_DIR/
      export.json                      what every artifact is: files, inputs/outputs, normalisation, spec
      saved_model/NAME/V/              TF Serving's tree (mount EXPORT_DIR/saved_model as /models)
        saved_model.pb, variables/
        assets/model.json              the model directory's model.json
        assets.extra/tf_serving_warmup_requests
      NAME_float32.tflite              float32 normalised crops [1, S, S, 3] → params_whitened, landmarks
      NAME_float16.tflite              float16 weights (the GPU delegate recipe)
      NAME_int8.tflite                 dynamic-range int8 weights (CPU only: hybrid kernels)
      NAME.onnx                        float32 normalised crops [N, S, S, 3] → params, landmarks (opset 17)

SavedModel signatures (all outputs float32):

* ``serving_default``: ``crops`` uint8 ``[N, S, S, 3]`` in the model's colour order (BGR for 3DDFA_V2
  weights) → ``params_whitened`` ``(N, 62)``, ``params`` ``(N, 62)`` raw, ``landmarks_2d`` ``(N, 68, 2)``
  and ``landmarks_3d`` ``(N, 68, 3)`` in crop pixels, ``pose`` ``(N, 3)`` yaw/pitch/roll degrees
  (+ ``vertices`` ``(N, 38365, 3)`` crop pixels with ``dense=True``).
* ``predict_image``: ``images`` string ``[N]`` encoded JPEG/PNG/BMP/GIF bytes, ``roi_boxes`` float32
  ``[N, 4]`` ``(x0, y0, x1, y1)`` image pixels → the same outputs plus ``landmarks_2d_image`` ``(N, 68, 2)``,
  ``landmarks_3d_image`` ``(N, 68, 3)`` in image pixels (and ``vertices_image`` with ``dense=True``).
  Decoding (RGB → BGR), cropping and resizing happen in the graph and reproduce
  :func:`tf2dasl.geometry.roi.crop_image` (rounded roi, zero padding, half-pixel bilinear resize, rounded
  to uint8 levels; JPEGs decoded with the accurate IDCT, as OpenCV does) up to OpenCV's fixed-point
  interpolation weights (crops differ by at most a level or two).

Normalisation ``(x - norm_mean) * norm_scale`` (from the spec) is inside the SavedModel; the TFLite and
ONNX graphs take *normalised* float32 NHWC crops (the app normalises: 3DDFA_V2 weights want BGR,
``(x - 127.5) / 128``). A 4-channel (2DASL) model runs its two passes inside every graph: the first with
an empty landmark map, the second with the map of the first pass's landmarks (``tf_landmark_map``); its
artifacts still take 3-channel crops.

TFLite outputs ``params_whitened`` ``(1, 62)`` and ``landmarks`` ``(1, 68, 3)`` crop pixels; raw parameters
are ``params_whitened * std + mean`` with the 62 + 62 numbers in export.json's ``whitening`` (raw values
reach 6e5, beyond float16: the GPU delegate computes in half precision). The landmark head is
:class:`LandmarkHead`, the morphable model rescaled so that every weight and intermediate fits float16,
written with GPU-delegate ops only (checked offline by :func:`gpu_op_issues`). ONNX outputs raw ``params``
``(N, 62)`` and ``landmarks`` ``(N, 68, 3)`` (float32 only; NHWC input: with ``inputs_as_nchw`` ONNX Runtime
measured the same speed, the one Transpose tf2onnx inserts costs nothing measurable).

The TFLite and ONNX graphs are converted from a SavedModel (TFLite: ``from_saved_model``, builtin ops only)
or a frozen ``tf.function`` (ONNX, tf2onnx, opset :data:`ONNX_OPSET`): the morphable model's arrays are
non-trainable *weights* of :class:`~tf2dasl.models.morphable.MorphableLayer` — ``tf.constant`` attributes
break tf2onnx's freezing silently, and TFLite conversion from concrete functions keeps resource ops.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import __version__
from .errors import UserError
from .geometry import tf_ops
from .geometry.morphable_model import NUM_LANDMARKS, NUM_PARAMS, NUM_POSE
from .model import FaceModel
from .models.morphable import MorphableLayer
from .models.preprocessor import CropPreprocessor
from .models.task import FaceTask

from .runtimes import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, EXPORT_JSON, TFLITE_VARIANTS  # noqa: F401 (re-exported)

FORMATS = ("savedmodel", "tflite", "onnx")
ONNX_OPSET = 17
WARMUP_BATCH_SIZES = (1, 8)
SERVING_SIGNATURES = ("serving_default", "predict_image")
#: TFLite ops that mean the weights were not frozen (the model would read uninitialised variables).
RESOURCE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")


class ExportError(UserError):
    """An export cannot be written (bad arguments, an output path in the way, an unsupported model)."""


# ============================================================================ the graphs
class ServingModule(tf.Module):
    """The SavedModel for TF Serving: a regressor and a :class:`MorphableLayer`, pre- and post-processing inside.

    ``serving_default(crops uint8 [N, S, S, 3])`` and ``predict_image(images string [N], roi_boxes float32
    [N, 4])``: see the module docstring for their outputs.
    """

    def __init__(self, model: FaceModel, dense: bool = False):
        super().__init__(name="tf2dasl_serving")
        spec = model.spec
        if dense and not model.mm.is_dense:
            raise ExportError(f"model {spec.name!r} has only 68-point bases (3DDFA v1 layout); --dense needs a "
                              "dense morphable model (3DDFA_V2 layout)")
        self.spec = spec
        self.size = int(spec.input_size)
        self.dense = bool(dense)
        hold(self, task=FaceTask(CropPreprocessor.from_spec(spec), model.regressor,
                                 MorphableLayer(model.mm, spec.input_size, spec.crop_convention, dense=self.dense,
                                                name="morphable")))
        self.tf_variables = tf_variables_of(self.task)
        s = self.size
        self.serving_default = tf.function(
            self._serve_crops, input_signature=[tf.TensorSpec([None, s, s, 3], tf.uint8, name="crops")])
        self.predict_image = tf.function(
            self._serve_images, input_signature=[tf.TensorSpec([None], tf.string, name="images"),
                                                 tf.TensorSpec([None, 4], tf.float32, name="roi_boxes")])

    def heads(self, params_w) -> dict:
        """Whitened params → every output of the signatures (static shapes for the SignatureDef)."""
        out = self.task.decode(params_w)
        lm3 = tf.reshape(out.pop("landmarks"), (-1, NUM_LANDMARKS, 3))
        out.update({"params_whitened": tf.identity(params_w), "landmarks_2d": lm3[..., :2], "landmarks_3d": lm3})
        if self.dense:
            morph = self.task.morphable
            out["vertices"] = tf.reshape(morph.vertices_crop(out["params"]), (-1, morph.num_vertices, 3))
        return out

    # ------------------------------------------------------------ signatures
    def _serve_crops(self, crops):
        return self.heads(self.task.infer(self.task.preprocessor.normalize(crops)))

    def _serve_images(self, images, roi_boxes):
        crops = tf.map_fn(lambda a: decode_and_crop(a[0], a[1], self.size), (images, roi_boxes),
                          fn_output_signature=tf.TensorSpec([self.size, self.size, 3], tf.float32))
        out = self.heads(self.task.infer(self.task.preprocessor.normalize(crops)))
        lm_img = tf_ops.crop_to_image(out["landmarks_3d"], roi_boxes, self.size)
        out["landmarks_3d_image"] = lm_img
        out["landmarks_2d_image"] = lm_img[..., :2]
        if self.dense:
            out["vertices_image"] = tf_ops.crop_to_image(out["vertices"], roi_boxes, self.size)
        return out


class LandmarkHead(keras.layers.Layer):
    """Whitened params ``(N, 62)`` → 68 landmarks in crop pixels ``(N, 68, 3)``, safe in float16.

    The morphable model's numbers span 1e-7 … 6e5 (shape coefficients and the mean shape are ~1e5 in model
    units, the scaled rotation ~1e-4), beyond float16's range (6.5e4, TFLite's float16 weights and the GPU
    delegate's half-precision arithmetic). The whitening is folded into the bases and the model frame is
    shrunk by ``k``: ``shape' = k (u + W mean_c) + (k W std_c) pw_c`` and ``R' = (pw_R std_R + mean_R) / k`` —
    every weight and intermediate stays within ~1e-4 … 1e3. A fully-connected layer and element-wise ops only
    (no batched matmul), so TFLite's GPU delegate takes all of it. Weights, not constants (see the module doc).
    """

    SHRINK = 1e-3

    def __init__(self, mm, input_size: int, convention: str, **kwargs):
        super().__init__(trainable=False, **kwargs)
        from .geometry.conventions import get_convention

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
    """The TFLite / ONNX graph: normalised float32 crops ``(N, S, S, 3)`` NHWC → ``landmarks`` ``(N, 68, 3)``
    crop pixels and ``params_whitened`` ``(N, 62)`` (``raw_params=False``, TFLite: raw parameters reach 6e5,
    beyond float16) or ``params`` ``(N, 62)`` raw (``raw_params=True``, ONNX). ``batch`` fixes the batch
    dimension (1 for mobile, None for any)."""

    def __init__(self, model: FaceModel, batch: int | None = 1, raw_params: bool = False):
        super().__init__(name="tf2dasl_mobile")
        spec = model.spec
        self.spec, self.size, self.raw_params = spec, int(spec.input_size), bool(raw_params)
        hold(self, task=FaceTask(
            CropPreprocessor.from_spec(spec), model.regressor,
            MorphableLayer(model.mm, spec.input_size, spec.crop_convention, dense=False, name="morphable"),
            landmark_head=LandmarkHead(model.mm, spec.input_size, spec.crop_convention, name="landmark_head")))
        self.tf_variables = tf_variables_of(self.task)
        self.serving_default = tf.function(
            self._call, input_signature=[tf.TensorSpec([batch, self.size, self.size, 3], tf.float32, name="crops")])

    def _call(self, crops):
        params_w = self.task.infer(crops)  # crops arrive normalised: the app normalises (export.json)
        out = {"landmarks": self.task.landmarks(params_w)}
        if self.raw_params:
            out["params"] = self.task.morphable.unwhiten(params_w)
        else:
            out["params_whitened"] = tf.identity(params_w)
        return out


def hold(module: tf.Module, **layers) -> None:
    """Give ``module`` Keras layers as plain attributes that a SavedModel does not record as objects.

    The SavedModel keeps the signatures' graphs and the variables (:func:`tf_variables_of`); recording the
    Keras objects themselves adds ~1000 object-graph nodes that ``tf.saved_model.load`` revives one by one
    (5 s per load instead of ~1 s) and that no consumer (TF Serving, converters, ``load``) needs.
    """
    for name, layer in layers.items():
        module.__dict__[name] = layer  # bypasses AutoTrackable.__setattr__: not a SavedModel dependency


def tf_variables_of(*layers) -> list:
    """The ``tf.Variable``s behind Keras layers' weights, for a ``tf.Module`` to track.

    A SavedModel that reaches Keras 3 weights only through the Keras objects records them as generic
    trackables; TFLite's converter then cannot freeze them and keeps ``VAR_HANDLE``/``READ_VARIABLE`` ops (an
    empty, unusable model). Tracking the underlying ``tf.Variable``s (as Keras' own ``ExportArchive`` does)
    makes them ordinary SavedModel variables that every converter freezes.
    """
    return [w.value for layer in layers for w in layer.weights]


def decode_and_crop(encoded, roi_box, size: int):
    """One encoded image (scalar string) and its roi box ``(4,)`` → ``(size, size, 3)`` float32 BGR crop on
    uint8 levels, as :func:`tf2dasl.geometry.roi.crop_image` makes it.

    ``crop_image`` rounds the roi, zero-pads outside the image and resizes with OpenCV's half-pixel bilinear
    sampling; here the image gets a 1-pixel zero border (so samples between the last row and the padding
    blend with zero, as in OpenCV) and ``crop_and_resize`` samples the same half-pixel positions.
    """
    # JPEG with the accurate integer IDCT (libjpeg's JDCT_ISLOW, what OpenCV's imread uses: identical pixels);
    # TF's default (fast) IDCT differs by up to 5 levels. PNG/BMP/GIF: tf.io.decode_image.
    img = tf.cond(tf.io.is_jpeg(encoded),
                  lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
                  lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False))  # (H, W, 3) uint8 RGB
    img = tf.reverse(img, axis=[-1])  # → BGR
    hw = tf.cast(tf.shape(img)[:2], tf.float32)
    padded = tf.pad(img, [[1, 1], [1, 1], [0, 0]])
    r = tf.round(tf.cast(roi_box, tf.float32))
    sx, sy, ex, ey = r[0], r[1], r[2], r[3]
    step_x, step_y = (ex - sx) / size, (ey - sy) / size
    # half-pixel source positions in padded pixels: first (i = 0) and last (i = size - 1) sample
    y0 = sy + 0.5 * step_y - 0.5 + 1.0
    y1 = sy + (size - 0.5) * step_y - 0.5 + 1.0
    x0 = sx + 0.5 * step_x - 0.5 + 1.0
    x1 = sx + (size - 0.5) * step_x - 0.5 + 1.0
    box = tf.stack([y0 / (hw[0] + 1.0), x0 / (hw[1] + 1.0), y1 / (hw[0] + 1.0), x1 / (hw[1] + 1.0)])[None]
    crop = tf.image.crop_and_resize(padded[None], box, tf.zeros([1], tf.int32), [size, size],
                                    method="bilinear", extrapolation_value=0.0)[0]
    return tf.clip_by_value(tf.round(crop), 0.0, 255.0)


# ============================================================================ writing
def _check_formats(formats) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ExportError(f"unknown export format(s) {bad or formats}; use a comma-separated subset of {','.join(FORMATS)}")
    return tuple(dict.fromkeys(formats))


def _tensor_desc(shape, dtype, layout=None, **extra) -> dict:
    d = {"shape": list(shape), "dtype": dtype}
    if layout:
        d["layout"] = layout
    d.update(extra)
    return d


def serving_io(spec, dense: bool) -> dict:
    """The documented inputs/outputs of both SavedModel signatures (shapes use -1 for any batch)."""
    s = spec.input_size
    outs = {"params_whitened": _tensor_desc([-1, spec.num_params], "float32"),
            "params": _tensor_desc([-1, spec.num_params], "float32", note="raw 3DDFA parameters"),
            "landmarks_2d": _tensor_desc([-1, 68, 2], "float32", note="crop pixels, 0-based, y down"),
            "landmarks_3d": _tensor_desc([-1, 68, 3], "float32", note="crop pixels, 0-based, y down"),
            "pose": _tensor_desc([-1, 3], "float32", note="yaw, pitch, roll in degrees")}
    if dense:
        outs["vertices"] = _tensor_desc([-1, -1, 3], "float32", note="dense mesh, crop pixels")
    img_outs = dict(outs, landmarks_2d_image=_tensor_desc([-1, 68, 2], "float32", note="image pixels"),
                    landmarks_3d_image=_tensor_desc([-1, 68, 3], "float32", note="image pixels"))
    if dense:
        img_outs["vertices_image"] = _tensor_desc([-1, -1, 3], "float32", note="dense mesh, image pixels")
    return {
        "serving_default": {
            "inputs": {"crops": _tensor_desc([-1, s, s, 3], "uint8", "NHWC",
                                             note=f"{spec.color_order} crops, 0..255; normalised in the graph")},
            "outputs": outs},
        "predict_image": {
            "inputs": {"images": _tensor_desc([-1], "string", note="encoded JPEG/PNG/BMP/GIF bytes"),
                       "roi_boxes": _tensor_desc([-1, 4], "float32", note="x0, y0, x1, y1 in image pixels")},
            "outputs": img_outs}}


def mobile_io(spec, batch, raw_params: bool) -> dict:
    s = spec.input_size
    b = -1 if batch is None else batch
    outs = {"landmarks": _tensor_desc([b, 68, 3], "float32", note="crop pixels, 0-based, y down")}
    if raw_params:
        outs["params"] = _tensor_desc([b, spec.num_params], "float32", note="raw 3DDFA parameters")
    else:
        outs["params_whitened"] = _tensor_desc([b, spec.num_params], "float32",
                                               note="raw params = params_whitened * whitening.std + whitening.mean "
                                                    "(in float32: raw values reach 6e5, beyond float16)")
    return {"inputs": {"crops": _tensor_desc([b, s, s, 3], "float32", "NHWC",
                                             note=f"{spec.color_order} crops normalised as (x - {spec.norm_mean}) "
                                                  f"* {spec.norm_scale}")},
            "outputs": outs}


def write_warmup(path: Path, model_name: str, size: int, batch_sizes=WARMUP_BATCH_SIZES) -> None:
    """``assets.extra/tf_serving_warmup_requests``: a TFRecord of ``PredictionLog``s on ``serving_default``."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(str(path)) as w:
        for b in batch_sizes:
            req = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default"))
            req.inputs["crops"].CopyFrom(tf.make_tensor_proto(rng.integers(0, 256, (b, size, size, 3), np.uint8)))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
            w.write(log.SerializeToString())


def export_saved_model(model: FaceModel, model_json: Path | None, out_dir: Path, dense: bool = False) -> dict:
    """Write the TF Serving SavedModel to ``out_dir`` (a version folder); returns its export.json entry."""
    module = ServingModule(model, dense=dense)
    if model_json is not None and Path(model_json).is_file():
        module.model_json = tf.saved_model.Asset(str(model_json))
    tf.saved_model.save(module, str(out_dir), signatures={"serving_default": module.serving_default,
                                                          "predict_image": module.predict_image})
    write_warmup(out_dir / "assets.extra" / "tf_serving_warmup_requests", model.spec.name, model.spec.input_size)
    return {"signatures": serving_io(model.spec, dense), "dense": bool(dense),
            "warmup": f"assets.extra/tf_serving_warmup_requests ({len(WARMUP_BATCH_SIZES)} PredictRequests on "
                      f"serving_default, batch sizes {list(WARMUP_BATCH_SIZES)})"}


def _save_mobile(model: FaceModel, out_dir: Path, batch) -> MobileModule:
    module = MobileModule(model, batch=batch, raw_params=False)
    tf.saved_model.save(module, str(out_dir), signatures={"serving_default": module.serving_default})
    return module


def tflite_ops(content: bytes) -> list[str]:
    """Op names used by a TFLite flatbuffer (``FLEX_*`` / custom names reveal non-builtin ops)."""
    from tensorflow.lite.python import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = set()
    for oc in m.operatorCodes:
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        if code == schema.BuiltinOperator.CUSTOM:
            cc = oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode)
            ops.add(f"CUSTOM:{cc}")
        else:
            ops.add(names.get(code, str(code)))
    return sorted(ops)


#: Builtin ops TFLite's GPU delegate takes (``CheckGpuDelegateCompatibility`` in TF's
#: ``lite/tools/versioning/gpu_compatibility.cc``), with the per-op rules of :func:`gpu_op_issues`.
GPU_OPS = frozenset("""
ABS ADD ADD_N ATAN2 AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM DENSIFY DEPTH_TO_SPACE
DEPTHWISE_CONV_2D DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD
FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGISTIC
LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD PADV2 POW PRELU QUANTIZE
REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT
SELECT SELECT_V2 SIGN SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE
STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV
""".split())


def gpu_op_issues(content: bytes) -> list[str]:
    """Offline check of a TFLite flatbuffer against the GPU delegate's op rules; one line per problem.

    TF 2.21's pip build of the model analyzer prints "looks compatible with GPU delegate" for any model
    (checked: UNIQUE, WHERE, TOPK_V2 pass), so this re-implements the part of TF's
    ``CheckGpuDelegateCompatibility`` that matters for our graphs: the supported op set, STRIDED_SLICE/SLICE
    on 3D/4D tensors only without ellipsis/new-axis/shrink masks, GATHER with 1D int32 indices on a
    non-int32 input, FULLY_CONNECTED with a runtime input, no hybrid (int8-weight, float-input) convolutions
    or fully-connected layers, CAST between float32/int32/bool only, MUL of two
    same-rank tensors where one is not smaller in every dimension, and float32/float16/int32/bool tensors.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    ok_types = {"FLOAT32", "FLOAT16", "INT32", "BOOL", "INT8", "UINT8"}
    issues = []
    for sgi, sg in enumerate(m.subgraphs):
        const = {i for i, t in enumerate(sg.tensors) if m.buffers[t.buffer].data is not None and
                 len(m.buffers[t.buffer].data)}

        def shape(i):
            return [int(d) for d in sg.tensors[i].shape] if sg.tensors[i].shape is not None else []

        def ttype(i):
            return types.get(sg.tensors[i].type, str(sg.tensors[i].type))

        for oi, op in enumerate(sg.operators):
            oc = m.operatorCodes[op.opcodeIndex]
            name = names.get(max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode)), "?")
            where = f"subgraph {sgi} op {oi} {name}"
            ins = [int(i) for i in op.inputs if i >= 0]
            opts = op.builtinOptions
            if name not in GPU_OPS:
                issues.append(f"{where}: not supported by the GPU delegate")
                continue
            bad_types = sorted({ttype(i) for i in ins + [int(o) for o in op.outputs]} - ok_types)
            if bad_types:
                issues.append(f"{where}: tensor types {bad_types}")
            if name in ("STRIDED_SLICE", "SLICE") and len(shape(ins[0])) not in (3, 4):
                issues.append(f"{where}: slices a {len(shape(ins[0]))}D tensor (GPU: 3D or 4D only)")
            if name == "STRIDED_SLICE" and opts is not None and (opts.ellipsisMask or opts.newAxisMask or
                                                                  opts.shrinkAxisMask):
                issues.append(f"{where}: ellipsis/new-axis/shrink mask")
            if name == "GATHER" and (ttype(ins[0]) == "INT32" or len(shape(ins[1])) != 1 or ttype(ins[1]) != "INT32"):
                issues.append(f"{where}: needs a non-int32 input and 1D int32 indices")
            if name == "FULLY_CONNECTED" and ins[0] in const:
                issues.append(f"{where}: constant input")
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(ins) > 1 and \
                    ttype(ins[0]) in ("FLOAT32", "FLOAT16") and ttype(ins[1]) == "INT8":
                issues.append(f"{where}: hybrid kernel (int8 weights, float input)")
            if name == "CAST":
                pair = (ttype(ins[0]), ttype(int(op.outputs[0])))
                allowed = {("BOOL", "FLOAT32"), ("BOOL", "FLOAT16"), ("FLOAT32", "BOOL"), ("FLOAT16", "BOOL"),
                           ("FLOAT32", "INT32"), ("INT32", "FLOAT32"), ("FLOAT32", "FLOAT32"), ("INT32", "INT32")}
                if pair not in allowed:
                    issues.append(f"{where}: cast {pair[0]} -> {pair[1]}")
            if name == "MUL" and len(ins) == 2:
                a, b = shape(ins[0]), shape(ins[1])
                if len(a) == len(b) and any(x < y for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)):
                    issues.append(f"{where}: broadcasts both inputs {a} x {b}")
    return issues


def gpu_analysis(content: bytes) -> tuple[bool, str]:
    """GPU-delegate compatibility of a TFLite flatbuffer: ``(compatible, report)``.

    The report is TFLite's analyzer output (``Analyzer.analyze(gpu_compatibility=True)``, captured at the file
    descriptor level since it prints from C++) followed by :func:`gpu_op_issues`' findings; compatible means
    the analyzer reports no incompatibility *and* the offline op check finds none.
    """
    import os
    import sys

    with tempfile.TemporaryFile(mode="w+b") as tmp:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                tf.lite.experimental.Analyzer.analyze(model_content=content, gpu_compatibility=True)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        text = buf.getvalue() + tmp.read().decode(errors="replace")
    analyzer_ok = "looks compatible with GPU delegate" in text and "GPU COMPATIBILITY WARNING" not in text.upper()
    issues = gpu_op_issues(content)
    text += "\n=== tf2dasl GPU op check ===\n" + ("\n".join(issues) if issues else "no GPU-incompatible ops") + "\n"
    return analyzer_ok and not issues, text


def export_tflite(src_saved_model: Path, out_dir: Path, name: str, variants=TFLITE_VARIANTS) -> dict:
    """Convert the mobile SavedModel into ``NAME_<variant>.tflite`` files; returns their export.json entries."""
    entries = {}
    # one converter for all variants: the SavedModel is imported once, each convert() re-runs the passes
    conv = tf.lite.TFLiteConverter.from_saved_model(str(src_saved_model), signature_keys=["serving_default"])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    for variant in variants:
        conv.optimizations, conv.target_spec.supported_types = [], []
        if variant == "float16":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        elif variant == "int8":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights, float activations
        try:
            content = conv.convert()
        except Exception as exc:  # conversion errors are long: keep the first line
            raise ExportError(f"TFLite conversion ({variant}) failed: {str(exc).strip().splitlines()[0]}") from None
        ops = tflite_ops(content)
        bad = [o for o in ops if o.startswith(("CUSTOM", "FLEX")) or o in RESOURCE_OPS]
        if bad:
            raise ExportError(f"TFLite conversion ({variant}) produced non-builtin or resource-variable ops {bad}")
        gpu_ok, _ = gpu_analysis(content)
        gpu_issues = gpu_op_issues(content)
        path = out_dir / f"{name}_{variant}.tflite"
        path.write_bytes(content)
        entries[variant] = {"file": path.name, "bytes": len(content), "ops": ops, "gpu_compatible": gpu_ok,
                            "gpu_issues": gpu_issues[:20],
                            "quantization": {"float32": "none", "float16": "float16 weights (GPU delegate recipe)",
                                             "int8": "dynamic-range int8 weights, float activations"}[variant]}
    return entries


def export_onnx(model: FaceModel, out_dir: Path, name: str, opset: int = ONNX_OPSET) -> dict:
    """Convert the mobile graph (dynamic batch) to ``NAME.onnx`` with tf2onnx; returns its export.json entry."""
    import logging

    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    module = MobileModule(model, batch=None, raw_params=True)
    fn = module.serving_default
    s = model.spec.input_size
    path = out_dir / f"{name}.onnx"
    with contextlib.redirect_stdout(io.StringIO()):
        tf2onnx.convert.from_function(fn, input_signature=[tf.TensorSpec([None, s, s, 3], tf.float32, name="crops")],
                                      opset=opset, output_path=str(path))
    _rename_onnx_io(path)
    return {"file": path.name, "bytes": path.stat().st_size, "opset": opset, "converter": f"tf2onnx {tf2onnx.__version__}"}


def _rename_onnx_io(path: Path) -> None:
    """tf2onnx names graph outputs after TF tensors (``Identity:0``): name them ``params`` and ``landmarks``."""
    import onnx

    m = onnx.load(str(path))
    g = m.graph
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
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def export_model(model_dir: str | Path, out_dir: str | Path, version: int = 1, formats=FORMATS,
                 dense: bool = False, log=print, tflite_variants=TFLITE_VARIANTS) -> dict:
    """Export a model directory to ``out_dir`` (see the module docstring); returns (and writes) export.json.

    ``formats``: a subset of :data:`FORMATS` (list or comma-separated string); ``version``: TF Serving's
    version folder; ``dense``: the SavedModel also outputs the dense mesh; ``tflite_variants``: which of
    :data:`TFLITE_VARIANTS` to convert."""
    from .io.model_dir import SPEC_FILE, load_model_dir, read_model_meta

    formats = _check_formats(formats)
    if int(version) < 1:
        raise ExportError(f"--version must be a positive integer (TF Serving's version folders), got {version}")
    model_dir = Path(model_dir)
    meta = read_model_meta(model_dir)
    model = load_model_dir(model_dir)
    spec = model.spec
    name = spec.name
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    old = out / EXPORT_JSON
    manifest = json.loads(old.read_text()) if old.is_file() else {}
    if manifest.get("model_name") not in (None, name):
        manifest = {}  # another model's export: start a fresh description (its files stay)
    manifest.update({"format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "tf2dasl_version": __version__,
                     "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model_name": name,
                     "model_dir": str(model_dir), "spec": spec.to_dict(),
                     "morphable_model": meta.get("morphable_model", {}),
                     "normalization": {"formula": "(x - mean) * scale", "mean": spec.norm_mean,
                                       "scale": spec.norm_scale, "color_order": spec.color_order,
                                       "channels_in": 3, "model_channels": spec.channels,
                                       "two_pass_landmark_map": spec.channels == 4},
                     "whitening": {"formula": "params = params_whitened * std + mean",
                                   "mean": [float(v) for v in model.mm.param_mean],
                                   "std": [float(v) for v in model.mm.param_std]},
                     "artifacts": manifest.get("artifacts", {})})
    arts = manifest["artifacts"]
    t0 = time.time()
    if "savedmodel" in formats:
        vdir = out / "saved_model" / name / str(int(version))
        if vdir.exists():
            shutil.rmtree(vdir)
        entry = export_saved_model(model, model_dir / SPEC_FILE, vdir, dense=dense)
        arts["savedmodel"] = {"path": str(vdir.relative_to(out)), "base_path": str((out / "saved_model" / name).relative_to(out)),
                              "version": int(version), "normalized_in_graph": True, **entry}
        log(f"savedmodel: {vdir} ({time.time() - t0:.1f} s)")
    if "tflite" in formats or "onnx" in formats:
        with tempfile.TemporaryDirectory(prefix="tf2dasl_mobile_") as tmp:
            if "tflite" in formats:
                t1 = time.time()
                _save_mobile(model, Path(tmp) / "mobile", batch=1)
                variants = export_tflite(Path(tmp) / "mobile", out, name, tflite_variants)
                arts["tflite"] = {"normalized_in_graph": False, **mobile_io(spec, 1, raw_params=False), "variants": variants,
                                  "delegates": "XNNPACK (LiteRT's default CPU delegate); the GPU delegate for "
                                               "float32/float16 where gpu_compatible"}
                log(f"tflite: {', '.join(v['file'] for v in variants.values())} ({time.time() - t1:.1f} s)")
            if "onnx" in formats:
                t1 = time.time()
                entry = export_onnx(model, out, name)
                arts["onnx"] = {"normalized_in_graph": False, **mobile_io(spec, None, raw_params=True), **entry}
                log(f"onnx: {out / entry['file']} (opset {entry['opset']}, {time.time() - t1:.1f} s)")
    (out / EXPORT_JSON).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
