"""The ONNX file: the graph a hand-made inference export would have, built node by node from the Keras weights.

``crops`` float32 ``[N, 3, S, S]`` (NCHW, the model's colour order, normalised by the app as export.json's
``normalization`` says) → ``params`` ``(N, 62)`` raw and ``landmarks`` ``(N, 68, 3)`` crop pixels.

* The backbone is :func:`~tf2dasl.export.onnx_layers.backbone_nodes`' NCHW graph: BatchNorm folded into the
  convolutions, padding inside each Conv, no transposes — what a PyTorch export of 3DDFA_V2 gives.
* The regressor's last fully-connected layer gives raw parameters (the whitening folded into its weights); the
  morphable model's 68-point decoding is one affine map of them and one batched product: ``Gemm`` → ``Split``
  → [homogeneous landmark shapes ``(N, 68, 4)`` | the pose ``[sR|t]ᵀ`` with the crop convention folded in
  ``(N, 4, 3)``] → ``MatMul``. The folding is done once in float64 (:func:`decoding_map`).
* A 4-channel (2DASL) model runs its two passes as :meth:`tf2dasl.models.task.FaceTask.infer` does: the first
  with the empty landmark map (all -1), the second with the map of the first pass's 18 map points
  (:func:`landmark_map_nodes`, the ONNX twin of :func:`tf2dasl.geometry.landmark_map.landmark_map`: a scatter,
  which ONNX has and tf2onnx would otherwise have to emulate); both passes share one copy of the weights. Its
  one-pass graph with a landmark-map input (``maps`` ``[N, 1, S, S]``) is a second file (``with_map``).

Every graph is checked against the Keras task model when it is built (:func:`check_against_keras`: landmarks on
random crops); a backbone with a layer the builder does not translate, or a graph that fails the check, is
converted by tf2onnx instead (the mobile graph, NHWC input), and export.json's ``converter`` says which.
"""
from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx
from onnx import TensorProto, helper

from ..geometry.conventions import get_convention
from ..geometry.landmark_map import BACKGROUND, FOREGROUND, MAP_POINT_PAIRS, landmark_map
from ..geometry.morphable_model import NUM_LANDMARKS, NUM_PARAMS, NUM_POSE
from ..inference.crops import normalize_crops
from ..inference.keras_runtime import KerasPredictor
from .mobile import MobileModule
from .onnx_layers import GraphBuilder, UnsupportedLayer, backbone_nodes

ONNX_OPSET = 17
INPUT, MAP_INPUT = "crops", "maps"
LAYOUT = "NCHW"
NOTES = {"params": "raw 3DDFA parameters", "landmarks": "crop pixels, 0-based, y down",
         "maps": "landmark maps: -1, +1 at the 18 map points (tf2dasl.geometry.landmark_map)"}
#: :func:`check_against_keras`: random crops, and the largest landmark difference (crop pixels) accepted on the
#: median crop (a 4-channel model's map point on a pixel boundary may round the other way on the odd crop).
CHECK_CROPS = 8
CHECK_TOLERANCE_PX = 0.01


# ============================================================================ the decoding, folded
def decoding_map(mm, size: int, convention: str, points=None) -> tuple[np.ndarray, np.ndarray, int]:
    """Raw params ``p (62,)`` → ``p @ H + h`` = [homogeneous model-frame points ``(K, 4)`` flattened | ``P'ᵀ``
    ``(4, 3)`` flattened], such that ``points_h @ P'ᵀ`` are the K points in crop pixels: ``P = [sR|t]`` with the
    crop convention's y flip and offsets folded in. ``points``: ``(a, b)`` landmark index pairs, each point the
    mean of the two (None: the 68 landmarks). Returns ``(H (62, 4K + 12), h (4K + 12,), K)`` in float64."""
    conv = get_convention(convention)
    u = np.asarray(mm.u_base, np.float64).reshape(NUM_LANDMARKS, 3)
    w = np.concatenate([mm.w_shp_base, mm.w_exp_base], axis=1).astype(np.float64).reshape(NUM_LANDMARKS, 3, -1)
    if points is not None:
        a, b = np.array([p[0] for p in points]), np.array([p[1] for p in points])
        u, w = (u[a] + u[b]) / 2, (w[a] + w[b]) / 2
    k = len(u)
    # homogeneous points: u + w @ p[12:], then a constant 1
    h_pts = np.zeros((NUM_PARAMS, k, 4))
    h_pts[NUM_POSE:, :, :3] = w.transpose(2, 0, 1)
    b_pts = np.concatenate([u, np.ones((k, 1))], axis=1)
    # P'ᵀ[j, i] = sign_i * p[4 i + j] + [j == 3] * offset_i   (crop = sign * (sR s + t) + offset)
    sign = np.array([1.0, -1.0, 1.0])
    offset = np.array([-conv.x_shift, size + conv.y_flip_offset, -conv.z_shift])
    h_pose, b_pose = np.zeros((NUM_PARAMS, 4, 3)), np.zeros((4, 3))
    for i in range(3):
        for j in range(4):
            h_pose[4 * i + j, j, i] = sign[i]
        b_pose[3, i] = offset[i]
    H = np.concatenate([h_pts.reshape(NUM_PARAMS, -1), h_pose.reshape(NUM_PARAMS, -1)], axis=1)
    return H, np.concatenate([b_pts.reshape(-1), b_pose.reshape(-1)]), k


def _decode(g: GraphBuilder, feat: str, regressor, mm, size: int, convention: str, points=None,
            tag: str = "decode") -> tuple[str, str]:
    """Pooled feature ``(N, F)`` → (raw params ``(N, 62)``, points ``(N, K, 3)`` crop pixels): the regressor's
    fully-connected layer with the whitening folded in (one Gemm to raw params), then :func:`decoding_map` (one
    Gemm, a Split and one batched MatMul). Measured: as fast as the bare regressor's Gemm within the noise,
    faster than one wide Gemm from the feature (more multiply-adds) or three Gemms (more ops)."""
    kernel, bias = (np.asarray(v, np.float64) for v in regressor.head.get_weights())
    std, mean = np.asarray(mm.param_std, np.float64), np.asarray(mm.param_mean, np.float64)
    params = g.op("Gemm", [feat, g.const("fc_raw_w", kernel * std), g.const("fc_raw_b", bias * std + mean)],
                  tag + "_params")
    H, h, k = decoding_map(mm, size, convention, points)
    y = g.op("Gemm", [params, g.const(f"{tag}_w", H), g.const(f"{tag}_b", h)], tag)
    pts_h, pose_t = g.op("Split", [y, g.const(f"{tag}_split", [4 * k, 12], np.int64)], tag + "_split", outputs=2,
                         axis=1)
    pts_h = g.op("Reshape", [pts_h, g.const(f"shape_{k}x4", [-1, k, 4], np.int64)], tag + "_points_h")
    pose_t = g.op("Reshape", [pose_t, g.const("shape_4x3", [-1, 4, 3], np.int64)], tag + "_pose_t")
    return params, g.op("MatMul", [pts_h, pose_t], tag + "_points")


def landmark_map_nodes(g: GraphBuilder, points: str, batch: str, size: int, scale: float = 1.0) -> str:
    """Map points ``(N, 18, 3)`` crop pixels → the landmark map channel ``(N, 1, S, S)``: -1, and +1 at each
    point rounded half up (``floor(x + 0.5)``) that falls inside the crop — as the numpy and TF twins — times
    ``scale`` (the int8 graph's map enters at half scale: :data:`tf2dasl.export.quantize.MAP_INPUT_SCALE`)."""
    k = len(MAP_POINT_PAIRS)
    r = g.op("Floor", [g.op("Add", [points, g.const("half", 0.5)], "map_half")], "map_round")
    x, y, _ = g.op("Split", [r], "map_xyz", outputs=3, axis=2)
    zero, side = g.const("zero_f", 0.0), g.const("size_f", float(size))
    inside = g.op("And", [g.op("And", [g.op("GreaterOrEqual", [x, zero]), g.op("Less", [x, side])]),
                          g.op("And", [g.op("GreaterOrEqual", [y, zero]), g.op("Less", [y, side])])], "map_inside")
    idx = g.op("Add", [g.op("Mul", [y, side]), x], "map_index")
    idx = g.op("Where", [inside, idx, g.const("outside_index", float(size * size))], "map_index_or_outside")
    idx = g.op("Cast", [g.op("Reshape", [idx, g.const(f"shape_{k}", [-1, k], np.int64)])], "map_index_i64",
               to=TensorProto.INT64)
    flat_shape = g.op("Concat", [batch, g.const("map_flat", [size * size + 1], np.int64)], "map_flat_shape", axis=0)
    canvas = g.op("Expand", [g.const("map_background", np.full((1, size * size + 1), BACKGROUND * scale)),
                             flat_shape], "map_canvas")
    hits = g.op("Expand", [g.const("map_foreground", np.full((1, 1), FOREGROUND * scale)),
                           g.op("Shape", [idx], "map_index_shape")], "map_hits")
    flat = g.op("ScatterElements", [canvas, idx, hits], "map_scatter", axis=1)
    flat = g.op("Slice", [flat, g.const("zero_i", [0], np.int64), g.const("map_pixels", [size * size], np.int64),
                          g.const("one_i", [1], np.int64)], "map_crop")
    return g.op("Reshape", [flat, g.const("shape_map", [-1, 1, size, size], np.int64)], "landmark_map")


# ============================================================================ the graph
def face_graph(model, opset: int = ONNX_OPSET, with_map: bool = False, map_scale: float = 1.0):
    """The model's ONNX graph (``onnx.ModelProto``, checked): NCHW normalised crops → params, landmarks. With
    ``with_map`` (4-channel models), the one-pass graph that also takes the landmark map ``maps`` ``[N, 1, S, S]``.
    ``map_scale``: a 4-channel model's landmark map values (±1) times this (the int8 graph's half scale).
    Raises :class:`~tf2dasl.export.onnx_layers.UnsupportedLayer` for a backbone it cannot translate."""
    spec, mm, reg = model.spec, model.mm, model.regressor
    s = int(spec.input_size)
    g = GraphBuilder()
    x = INPUT
    inputs = [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 3, s, s])]
    if with_map:
        inputs.append(helper.make_tensor_value_info(MAP_INPUT, TensorProto.FLOAT, ["N", 1, s, s]))
        x = g.op("Concat", [x, MAP_INPUT], "input_with_map", axis=1)
    elif spec.channels == 4:
        batch = g.op("Slice", [g.op("Shape", [x], "input_shape"), g.const("zero_i", [0], np.int64),
                               g.const("one_i", [1], np.int64)], "batch")
        empty_shape = g.op("Concat", [batch, g.const("map_chw", [1, s, s], np.int64)], "empty_map_shape", axis=0)
        empty = g.op("Expand", [g.const("empty_map_value", np.full((1, 1, s, s), BACKGROUND * map_scale)),
                                empty_shape], "empty_map")
        feat1 = backbone_nodes(g, reg.backbone, g.op("Concat", [x, empty], "pass1_input", axis=1), "pass1/")
        _, pts = _decode(g, feat1, reg, mm, s, spec.crop_convention, MAP_POINT_PAIRS, "pass1_map_points")
        x = g.op("Concat", [x, landmark_map_nodes(g, pts, batch, s, map_scale)], "pass2_input", axis=1)
    two_pass = spec.channels == 4 and not with_map
    feat = backbone_nodes(g, reg.backbone, x, "pass2/" if two_pass else "")
    params, lm = _decode(g, feat, reg, mm, s, spec.crop_convention)
    g.rename(params, "params")
    g.rename(lm, "landmarks")
    graph = helper.make_graph(
        g.nodes, f"tf2dasl_{spec.name}", inputs,
        [helper.make_tensor_value_info("params", TensorProto.FLOAT, ["N", NUM_PARAMS]),
         helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["N", NUM_LANDMARKS, 3])],
        list(g.initializers.values()))
    what = " and landmark maps NCHW (one pass)" if with_map else ""
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tf2dasl",
                              doc_string=f"{spec.name}: normalised {spec.color_order} crops NCHW{what} -> raw 3DDFA "
                                         "params, 68 landmarks in crop pixels")
    onnx.checker.check_model(proto, full_check=True)
    return proto


def check_against_keras(model, proto, layout: str = LAYOUT, crops: int = CHECK_CROPS, with_map: bool = False) -> dict:
    """Run ``proto`` (ONNX Runtime) and the Keras task model on the same random uint8 crops (``with_map``: and the
    landmark maps of random landmarks); the median and max over crops of the largest landmark difference (crop
    pixels) and the largest raw-parameter difference relative to the parameters' spread."""
    spec = model.spec
    rng = np.random.default_rng(0)
    c = rng.integers(0, 256, (crops, spec.input_size, spec.input_size, 3), np.uint8)
    maps = landmark_map(rng.uniform(0, spec.input_size, (crops, NUM_LANDMARKS, 2)), spec.input_size) \
        if with_map else None
    x = normalize_crops(c, spec.norm_mean, spec.norm_scale)
    feed = {INPUT: np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if layout == "NCHW" else x}
    if with_map:
        feed[MAP_INPUT] = maps[:, None] if layout == "NCHW" else maps[..., None]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    params, lm = sess.run(["params", "landmarks"], feed)
    ref_params = KerasPredictor(model).predict(c, maps).params
    ref_lm = model.decoder.landmarks(ref_params)
    per_crop = np.abs(lm - ref_lm).max(axis=(1, 2))
    rel = np.abs(params - ref_params).max() / float(np.asarray(model.mm.param_std).max())
    return {"crops": int(crops), "median_max_landmark_diff_px": float(np.median(per_crop)),
            "max_landmark_diff_px": float(per_crop.max()), "max_param_diff_in_std": float(rel),
            "against": "the Keras task model (KerasPredictor + Decoder), random crops"}


def convert_onnx(model, opset: int = ONNX_OPSET, log=print, with_map: bool = False) -> tuple[object, dict]:
    """The model's ONNX graph (``with_map``: the one-pass graph with a landmark-map input) and its export.json
    details (``converter``, ``layout``, ``check``): the direct graph (:func:`face_graph`) when the builder translates
    the backbone and the graph passes :func:`check_against_keras`, else tf2onnx's conversion of the mobile graph
    (NHWC input)."""
    try:
        proto = face_graph(model, opset, with_map)
        check = check_against_keras(model, proto, with_map=with_map)
        if check["median_max_landmark_diff_px"] <= CHECK_TOLERANCE_PX:
            return proto, {"converter": f"tf2dasl direct graph (onnx {onnx.__version__})", "layout": LAYOUT,
                           "check": check}
        reason = (f"the direct graph differs from Keras by {check['median_max_landmark_diff_px']:.3g} px "
                  f"(> {CHECK_TOLERANCE_PX})")
    except UnsupportedLayer as exc:
        reason = f"the direct graph does not translate {exc}"
    log(f"onnx: {reason}; converting with tf2onnx instead")
    proto, converter = convert_with_tf2onnx(model, opset, with_map)
    return proto, {"converter": f"{converter} ({reason})", "layout": "NHWC",
                   "check": check_against_keras(model, proto, layout="NHWC", with_map=with_map)}


# ============================================================================ the fallback
def convert_with_tf2onnx(model, opset: int = ONNX_OPSET, with_map: bool = False):
    """tf2onnx's conversion of the mobile graph (:class:`~tf2dasl.export.mobile.MobileModule`, raw params, NHWC
    input, any batch; ``with_map``: its one-pass signature) with its inputs and outputs named ``crops`` [,
    ``maps``], ``params``, ``landmarks``."""
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    module = MobileModule(model, batch=None, raw_params=True)
    s = model.spec.input_size
    signature = [tf.TensorSpec([None, s, s, 3], tf.float32, name=INPUT)]
    if with_map:
        signature.append(tf.TensorSpec([None, s, s], tf.float32, name=MAP_INPUT))
    with contextlib.redirect_stdout(io.StringIO()):
        proto, _ = tf2onnx.convert.from_function(module.with_map if with_map else module.serving_default,
                                                 input_signature=signature, opset=opset)
    return rename_io(proto, with_map), f"tf2onnx {tf2onnx.__version__}"


def rename_io(proto, with_map: bool = False):
    """tf2onnx names graph inputs and outputs after TF tensors (``Identity:0``): name them ``crops`` [, ``maps``],
    ``params`` and ``landmarks`` (inputs by rank: the crops are 4D, the maps 3D)."""
    g = proto.graph
    rename = {}
    for o in g.output:
        shape = [d.dim_value for d in o.type.tensor_type.shape.dim]
        rename[o.name] = "landmarks" if len(shape) == 3 else "params"
    for i in g.input:
        rank = len(i.type.tensor_type.shape.dim)
        rename[i.name] = MAP_INPUT if with_map and rank == 3 else INPUT
    for coll in (g.input, g.output):
        for v in coll:
            v.name = rename.get(v.name, v.name)
    for node in g.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    onnx.checker.check_model(proto)
    return proto
