"""The same maths as the numpy modules, in TensorFlow: graph-, XLA- and TFLite-friendly.

Pure functions of tensors (no Keras, no variables): callers own the bases (a Keras layer keeps them as
non-trainable weights, see ``tf2dasl.models.morphable``). Shapes as in the numpy twins; no Python loops
over faces, no ops outside TFLite's builtin set.
"""
from __future__ import annotations

import math

import tensorflow as tf

from .conventions import CROP_OFFSET_V2, CropConvention
from .landmark_map import BACKGROUND, FOREGROUND, MAP_POINT_PAIRS, pair_indices
from .morphable_model import NUM_PARAMS, NUM_POSE
from .pose import GIMBAL_LOCK
from .roi import ROI_LANDMARK_SCALE


def unwhiten(params_w, mean, std):
    """``(B, 62)`` whitened → raw."""
    return params_w * std + mean


def whiten(params, mean, std):
    """``(B, 62)`` raw → whitened."""
    return (params - mean) / std


def vertices(params, u, w_shp, w_exp):
    """Raw params ``(B, 62)`` and bases ``u (3N,)``, ``w_shp (3N, 40)``, ``w_exp (3N, 10)`` → ``(B, N, 3)`` model frame."""
    pose = tf.reshape(params[:, :NUM_POSE], (-1, 3, 4))
    coeffs = params[:, NUM_POSE:NUM_PARAMS]  # shape then expression coefficients, (B, 50)
    basis = tf.concat([w_shp, w_exp], axis=1)
    flat = u[None, :] + tf.matmul(coeffs, basis, transpose_b=True)
    shape = tf.reshape(flat, (tf.shape(params)[0], -1, 3))
    return tf.matmul(shape, pose[:, :, :3], transpose_b=True) + pose[:, None, :, 3]


def model_to_crop(points, size: int, convention: CropConvention = CROP_OFFSET_V2):
    """Model frame ``(B, N, 3)`` → crop pixels (0-based, y down)."""
    offset = tf.constant([-convention.x_shift, size + convention.y_flip_offset, -convention.z_shift], points.dtype)
    sign = tf.constant([1.0, -1.0, 1.0], points.dtype)
    return points * sign + offset


def crop_to_image(points, roi_boxes, size: int):
    """Crop pixels ``(B, N, 3)`` → image pixels through roi boxes ``(B, 4)``; z scaled by the mean scale."""
    roi = tf.cast(roi_boxes, points.dtype)
    sx = (roi[:, 2] - roi[:, 0]) / size
    sy = (roi[:, 3] - roi[:, 1]) / size
    scale = tf.stack([sx, sy, (sx + sy) / 2], axis=1)[:, None, :]
    shift = tf.stack([roi[:, 0], roi[:, 1], tf.zeros_like(sx)], axis=1)[:, None, :]
    return points * scale + shift


def roi_center_side(landmarks, roi_scale: float = ROI_LANDMARK_SCALE):
    """TF twin of :func:`tf2dasl.geometry.roi.roi_center_side`: ``(B, K, >=2)`` → centres ``(B, 2)``, sides ``(B,)``."""
    lm = landmarks[:, :, 0:2]
    lo, hi = tf.reduce_min(lm, axis=1), tf.reduce_max(lm, axis=1)
    return (lo + hi) / 2, roi_scale * tf.reduce_max(hi - lo, axis=1)


def params_to_sRt(params):
    """``(B, >=12)`` → scale ``(B,)``, rotation ``(B, 3, 3)``, translation ``(B, 3)`` (3DDFA_V2's P2sRt)."""
    P = tf.reshape(params[:, :12], (-1, 3, 4))
    r1, r2 = P[:, 0, :3], P[:, 1, :3]
    n1 = tf.sqrt(tf.reduce_sum(tf.square(r1), axis=1, keepdims=True))
    n2 = tf.sqrt(tf.reduce_sum(tf.square(r2), axis=1, keepdims=True))
    s = (n1[:, 0] + n2[:, 0]) / 2.0
    r1, r2 = r1 / n1, r2 / n2
    r3 = _cross(r1, r2)
    return s, tf.stack([r1, r2, r3], axis=1), P[:, :, 3]


def _atan2(y, x):
    return tf.math.atan2(y, x)


def _cross(a, b):
    """Cross product of ``(B, 3)`` vectors with slicing only (TFLite has no Cross op)."""
    a0, a1, a2 = a[:, 0], a[:, 1], a[:, 2]
    b0, b1, b2 = b[:, 0], b[:, 1], b[:, 2]
    return tf.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=1)


def matrix_to_angles(R):
    """Rotations ``(B, 3, 3)`` → ``(B, 3)`` (yaw, pitch, roll) in degrees, gimbal lock as numpy."""
    r20 = tf.clip_by_value(R[:, 2, 0], -1.0, 1.0)
    cos = tf.sqrt(tf.maximum(1.0 - tf.square(r20), 0.0))
    yaw = _atan2(r20, cos)  # asin without the Asin op
    safe = tf.where(tf.abs(cos) > 1e-6, cos, tf.ones_like(cos))
    pitch = _atan2(R[:, 2, 1] / safe, R[:, 2, 2] / safe)
    roll = _atan2(R[:, 1, 0] / safe, R[:, 0, 0] / safe)
    up, down = r20 > GIMBAL_LOCK, r20 < -GIMBAL_LOCK
    half_pi = tf.fill(tf.shape(yaw), tf.constant(math.pi / 2, yaw.dtype))
    yaw = tf.where(up, half_pi, tf.where(down, -half_pi, yaw))
    pitch = tf.where(up, _atan2(-R[:, 0, 1], -R[:, 0, 2]), tf.where(down, _atan2(R[:, 0, 1], R[:, 0, 2]), pitch))
    roll = tf.where(tf.logical_or(up, down), tf.zeros_like(roll), roll)
    return tf.stack([yaw, pitch, roll], axis=1) * (180.0 / math.pi)


def params_to_pose(params):
    """``(B, >=12)`` raw params → ``(B, 3)`` (yaw, pitch, roll) degrees."""
    return matrix_to_angles(params_to_sRt(params)[1])


# ---------------------------------------------------------------------------- the landmark map
def map_points(landmarks, pairs=MAP_POINT_PAIRS):
    """TF twin of :func:`tf2dasl.geometry.landmark_map.map_points`: ``(B, K, >=2)`` → ``(B, 18, 2)`` (NaN stays)."""
    a, b = pair_indices(pairs)
    lm = landmarks[:, :, 0:2]  # plain slice: no ellipsis/shrink masks (TFLite GPU delegate)
    return (tf.gather(lm, a, axis=1) + tf.gather(lm, b, axis=1)) / 2


def map_from_points(points, size: int = 120):
    """TF twin of :func:`tf2dasl.geometry.landmark_map.map_from_points`: map points ``(B, K, 2)`` crop pixels (NaN:
    marks nothing) → maps ``(B, size, size)`` in ``points``' dtype.

    Each point becomes a one-hot row of its x and of its y, and one batched product ``y_hotᵀ @ x_hot`` counts the
    points per pixel: builtin ops the TFLite GPU delegate takes (ONE_HOT, BATCH_MATMUL, SELECT_V2), no scatter, and
    ``2 K S`` numbers per face instead of a ``K S²`` one-hot. A NaN or outside point fails the range test and gets
    index -1, whose one-hot row is all zeros."""
    k = int(points.shape[1])
    r = tf.floor(points + 0.5)
    x, y = r[:, :, 0:1], r[:, :, 1:2]
    inside = (x >= 0.0) & (x < size) & (y >= 0.0) & (y < size)  # False for NaN
    x_hot = tf.one_hot(tf.reshape(tf.cast(tf.where(inside, x, -1.0), tf.int32), (-1, k)), size, dtype=points.dtype)
    y_hot = tf.one_hot(tf.reshape(tf.cast(tf.where(inside, y, -1.0), tf.int32), (-1, k)), size, dtype=points.dtype)
    hits = tf.matmul(tf.transpose(y_hot, (0, 2, 1)), x_hot)  # (B, S, S): points per pixel
    return tf.minimum(hits, 1.0) * (FOREGROUND - BACKGROUND) + BACKGROUND


def landmark_map(landmarks, size: int = 120):
    """TF twin of :func:`tf2dasl.geometry.landmark_map.landmark_map`: 68 crop-pixel landmarks ``(B, 68, >=2)`` →
    maps ``(B, size, size)``."""
    return map_from_points(map_points(landmarks), size)
