"""2DASL's losses in TF: WPDC, VDC, parameter distance, face-size-normalised landmark losses with a visibility
mask (consistency, cycle), self-critic.

All take batches and return a scalar mean over the batch (the caller scales for distribution).
Landmarks are crop pixels ``(B, N, 2|3)``, NaN where a point is not visible; params ``(B, 62)`` (whitened where
named ``*_w``).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .geometry import tf_ops
from .geometry.landmark_map import MAP_POINT_PAIRS, MAP_POINT_WEIGHTS
from .geometry.morphable_model import NUM_LANDMARKS, NUM_PARAMS

#: 3DDFA's WPDC shape/expression scale (``magic_number`` in its ``WPDCLoss``).
WPDC_SHAPE_SCALE = 0.00057339936
WPDC_EPS = 1e-6
#: Charbonnier epsilon (crop pixels) of landmark distances: ``sqrt(d^2 + eps^2) - eps`` is smooth at 0, so a
#: consistency term whose two sides already agree gives (almost) no gradient instead of unit-length noise.
LANDMARK_EPS = 0.5
#: Pose parameters of ``P = [sR | t]`` (row-major 3x4) that multiply the x, y and z of the shape.
_POSE_AXIS = np.array([0, 1, 2, -1, 0, 1, 2, -1, 0, 1, 2, -1])
#: index of the z translation in the row-major 3x4 pose ``params[:12]`` (no meaning under weak perspective)
T_Z_INDEX = 11


def point_weights(landmark_set: str) -> tuple[np.ndarray, np.ndarray]:
    """The points a 68-point landmark loss compares: ``(A (K, 68), w (K,))`` with ``points_K = A @ points_68``.

    ``all68``: the 68 points, weight 1 each. ``map18``: 2DASL's 18 map points (single landmarks or the midpoints
    of two: eye centres from the eyelids, the inner-lip centre) with their 2.0/1.0/0.5 weights — so the loss sees
    the midpoint, not each eyelid or lip point on its own. (Several landmark sets:
    :meth:`tf2dasl.data.landmark_sets.PointLayout.loss_points`.)
    """
    if landmark_set == "all68":
        return np.eye(NUM_LANDMARKS, dtype=np.float32), np.ones(NUM_LANDMARKS, np.float32)
    if landmark_set == "map18":
        a = np.zeros((len(MAP_POINT_PAIRS), NUM_LANDMARKS), np.float32)
        for k, (i, j) in enumerate(MAP_POINT_PAIRS):
            a[k, i] += 0.5
            a[k, j] += 0.5
        return a, np.asarray(MAP_POINT_WEIGHTS, np.float32)
    raise ValueError(f"unknown landmark set {landmark_set!r} (all68 or map18)")


def visible(points):
    """``(B, N, D)`` points → ``(B, N)`` bool: every coordinate finite (NaN marks a point that is not visible)."""
    return tf.reduce_all(tf.math.is_finite(points), axis=-1)


def face_size(landmarks):
    """``(B, N, >=2)`` → ``(B,)`` sqrt(w * h) of the box of the visible 2D points (the NME normaliser; no
    gradient: it is a scale)."""
    lm = tf.stop_gradient(landmarks[..., :2])
    vis = visible(lm)[..., None]
    big = tf.constant(np.float32(3.0e38), lm.dtype)
    hi = tf.reduce_max(tf.where(vis, lm, -big), axis=1)
    lo = tf.reduce_min(tf.where(vis, lm, big), axis=1)
    wh = tf.maximum(hi - lo, 0.0)
    return tf.sqrt(tf.maximum(wh[:, 0] * wh[:, 1], 1e-6))


def landmark_loss(pred, target, points=None, normaliser=None, eps: float = LANDMARK_EPS, faces=None):
    """Weighted mean point distance of ``(B, N, D)`` landmarks over the face size of ``normaliser`` (default
    ``target``), with a visibility mask: a target point with NaN coordinates is not visible and contributes
    nothing — no distance, no gradient (never NaN: NaNs are replaced before any arithmetic).

    ``points``: ``(A (K, N), w (K,))`` (:func:`point_weights`) — the loss compares ``A @ pred`` with
    ``A @ target`` with weights ``w``; a compared point needs every target point it is made of. ``None``: the
    ``N`` points, equal weights. Per face the weights of its visible points are normalised to sum to 1; the
    batch mean is over the faces with at least one visible point. Distances are Charbonnier-smoothed
    (``sqrt(d^2 + eps^2) - eps``, crop pixels). Zero when ``pred == target``. ``faces (B,)`` bool: only these faces
    count (default: all), as if the others had no visible point.
    """
    d = pred.shape[-1]
    tgt = target[..., :d]
    vis = visible(tgt)                                                         # (B, N)
    tgt = tf.where(vis[..., None], tgt, tf.zeros_like(tgt))
    if points is None:
        w = tf.cast(vis, pred.dtype)
    else:
        a = tf.constant(points[0], pred.dtype)
        pred, tgt = tf.einsum("kn,bnd->bkd", a, pred), tf.einsum("kn,bnd->bkd", a, tgt)
        missing = tf.einsum("kn,bn->bk", tf.cast(tf.constant(points[0]) != 0, pred.dtype),
                            tf.cast(tf.logical_not(vis), pred.dtype))
        w = tf.constant(points[1], pred.dtype)[None] * tf.cast(missing == 0, pred.dtype)
    dist = tf.sqrt(tf.reduce_sum(tf.square(pred - tgt), axis=-1) + eps * eps) - eps  # (B, K)
    total_w = tf.reduce_sum(w, axis=1)
    has = total_w > 0
    if faces is not None:
        has = tf.logical_and(has, faces)
    per_face = tf.reduce_sum(dist * w, axis=1) / tf.where(has, total_w, 1.0)
    norm = face_size(target if normaliser is None else normaliser)
    per_face = tf.where(has, per_face / norm, 0.0)
    return tf.reduce_sum(per_face) / tf.maximum(tf.reduce_sum(tf.cast(has, pred.dtype)), 1.0)


def wpdc_weights(pred, target, u_base, w_shp_base, w_exp_base, zero_z: bool = True):
    """3DDFA's WPDC weights ``(B, 62)`` (no gradient) for RAW params ``pred``/``target``.

    Pose weights: |Δp| times the norm of the target shape's x, y or z coordinates over the 68 points
    (translations x, y: times sqrt(68)); shape/expression: ``WPDC_SHAPE_SCALE`` |Δα| times the basis column
    norms; each row normalised by its max; the z translation's weight is 0 (``zero_z``, as 2DASL did).
    """
    pred, target = tf.stop_gradient(pred), tf.stop_gradient(target)
    n = tf.shape(pred)[0]
    coeffs = target[:, 12:]
    basis = tf.concat([w_shp_base, w_exp_base], axis=1)  # (204, 50)
    shape = tf.reshape(u_base[None, :] + tf.matmul(coeffs, basis, transpose_b=True), (n, -1, 3))  # (B, 68, 3)
    axis_norm = tf.sqrt(tf.reduce_sum(tf.square(shape), axis=1))  # (B, 3)
    k = tf.cast(tf.shape(shape)[1], pred.dtype)
    per_pose = tf.concat([axis_norm, tf.sqrt(k)[None, None] * tf.ones((n, 1), pred.dtype)], axis=1)  # (B, 4)
    pose_scale = tf.gather(per_pose, np.where(_POSE_AXIS < 0, 3, _POSE_AXIS), axis=1)  # (B, 12)
    w_pose = tf.abs(pred[:, :12] - target[:, :12]) * pose_scale + WPDC_EPS
    col_norm = tf.sqrt(tf.reduce_sum(tf.square(basis), axis=0))  # (50,)
    w_se = WPDC_SHAPE_SCALE * tf.abs(pred[:, 12:] - target[:, 12:]) * col_norm + WPDC_EPS
    w = tf.concat([w_pose, w_se], axis=1)
    if zero_z:  # before normalising, as 3DDFA does: the z translation never sets the row's maximum
        w = w * tf.constant((np.arange(NUM_PARAMS) != T_Z_INDEX).astype(np.float32), w.dtype)
    w = w / tf.reduce_max(w, axis=1, keepdims=True)
    return tf.stop_gradient(w)


def face_mean(per_value, faces=None):
    """``(B, D)`` → the mean of the values of the faces ``faces`` — ``(B,)`` bool, or ``(B, D)`` bool: the values
    that count — (default: all); 0 when none counts."""
    if faces is None:
        return tf.reduce_mean(per_value)
    keep = tf.cast(faces, per_value.dtype)
    keep = keep[:, None] * tf.ones_like(per_value) if keep.shape.rank == 1 else keep
    return tf.reduce_sum(per_value * keep) / tf.maximum(tf.reduce_sum(keep), 1.0)


def wpdc_loss(pred_w, target_w, mean, std, u_base, w_shp_base, w_exp_base, zero_z: bool = True, faces=None):
    """WPDC on whitened params ``(B, 62)``: ``mean(w * (pred_w - target_w)^2)`` with :func:`wpdc_weights` (over the
    faces ``faces (B,)`` bool, default all)."""
    w = wpdc_weights(pred_w * std + mean, target_w * std + mean, u_base, w_shp_base, w_exp_base, zero_z)
    return face_mean(w * tf.square(pred_w - target_w), faces)


def param_l2_loss(pred_w, target_w, faces=None):
    """Mean squared distance of whitened parameters ``(B, 62)`` (the plain distillation anchor), over the faces
    ``faces (B,)`` bool or the parameters ``faces (B, 62)`` bool (default all)."""
    return face_mean(tf.square(pred_w - target_w), faces)


def camera_loss(params):
    """How far the affine camera of raw params ``(B, >=12)`` is from a scaled rotation in its third (depth) row:
    the mean squared distance of that row from ``s R[2]`` (the scaled rotation of
    :func:`tf2dasl.geometry.tf_ops.params_to_sRt`) over ``s^2``. Only the depth row gets a gradient: 2D points
    constrain the first two rows and never the third."""
    params = tf.cast(params, tf.float32)
    s, rotation, _ = tf_ops.params_to_sRt(tf.stop_gradient(params))
    depth = tf.reshape(params[:, :12], (-1, 3, 4))[:, 2, :3]
    return tf.reduce_mean(tf.reduce_sum(tf.square(depth - s[:, None] * rotation[:, 2]), axis=1) / tf.square(s))


def vdc_loss(pred_points, target_points, faces=None):
    """Vertex distance: mean L2 distance of ``(B, N, 3)`` points over the target's face size (faces ``faces``)."""
    return landmark_loss(pred_points, target_points, faces=faces)


def critic_loss(real_logits, fake_logits):
    """The critic's BCE: real pairs → 1, predicted pairs → 0."""
    bce = tf.nn.sigmoid_cross_entropy_with_logits
    return (tf.reduce_mean(bce(labels=tf.ones_like(real_logits), logits=real_logits))
            + tf.reduce_mean(bce(labels=tf.zeros_like(fake_logits), logits=fake_logits)))


def adversarial_loss(fake_logits):
    """The regressor's loss against the critic: its predicted pairs should be judged real."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(fake_logits),
                                                                   logits=fake_logits))
