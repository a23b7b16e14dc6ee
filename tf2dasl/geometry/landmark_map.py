"""2DASL's landmark map: the 4th input channel, ``(size, size)`` of -1 with +1 at 18 landmark pixels.

The 18 points are a subset of the 68 (0-based): brows 17, 19, 21, 22, 24, 26; eyes 36, mid(37, 40), 39,
42, mid(43, 46), 45; nose 31, 30, 35; mouth 48, mid(62, 66), 54. Points are crop pixels (0-based,
y down); a point outside the crop marks nothing; points are rounded half up (``floor(x + 0.5)``).
"""
from __future__ import annotations

import numpy as np

#: (a, b) pairs: the map point is the mean of landmarks a and b (a == b for plain landmarks).
MAP_POINT_PAIRS = ((17, 17), (19, 19), (21, 21), (22, 22), (24, 24), (26, 26),
                   (36, 36), (37, 40), (39, 39), (42, 42), (43, 46), (45, 45),
                   (31, 31), (30, 30), (35, 35), (48, 48), (62, 66), (54, 54))
NUM_MAP_POINTS = len(MAP_POINT_PAIRS)
_A = np.array([a for a, _ in MAP_POINT_PAIRS], np.int32)
_B = np.array([b for _, b in MAP_POINT_PAIRS], np.int32)

#: The 2DASL training script's per-point weights: 2.0 nose tip and mouth centre, 1.0 eye centres and
#: mouth corners, 0.5 the others (same order as MAP_POINT_PAIRS).
MAP_POINT_WEIGHTS = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
                              0.5, 1.0, 0.5, 0.5, 1.0, 0.5,
                              0.5, 2.0, 0.5, 1.0, 2.0, 1.0], np.float32)

BACKGROUND, FOREGROUND = -1.0, 1.0


def map_points(landmarks: np.ndarray) -> np.ndarray:
    """``(B, 68, >=2)`` → the 18 map points ``(B, 18, 2)``."""
    lm = np.asarray(landmarks, np.float32)[..., :2]
    return (lm[:, _A] + lm[:, _B]) / 2


def landmark_map(landmarks: np.ndarray | None, size: int = 120, batch: int | None = None) -> np.ndarray:
    """Crop-pixel landmarks ``(B, 68, >=2)`` → maps ``(B, size, size)`` float32; ``None`` → empty maps (all -1)."""
    if landmarks is None:
        return np.full((batch or 1, size, size), BACKGROUND, np.float32)
    return map_from_points(map_points(landmarks), size)


def tf_map_points(landmarks):
    """TF twin of :func:`map_points`: ``(B, 68, >=2)`` → ``(B, 18, 2)``."""
    import tensorflow as tf

    lm = landmarks[:, :, 0:2]  # plain slice: no ellipsis/shrink masks (TFLite GPU delegate)
    return (tf.gather(lm, _A, axis=1) + tf.gather(lm, _B, axis=1)) / 2


def tf_map_pixels(landmarks):
    """``(B, 68, >=2)`` → the 18 map points as int32 pixels ``(B, 18, 2)``, rounded half up like the numpy twin
    (``floor(x + 0.5)``: no ROUND op, GPU-delegate friendly)."""
    import tensorflow as tf

    return tf.cast(tf.floor(tf_map_points(landmarks) + 0.5), tf.int32)


def tf_landmark_map(landmarks, size: int = 120):
    """TF twin of :func:`landmark_map` (one-hot based, TFLite-friendly): ``(B, 68, >=2)`` → ``(B, size, size)``."""
    import tensorflow as tf

    pts = tf_map_pixels(landmarks)
    x = tf.reshape(pts[:, :, 0:1], (-1, NUM_MAP_POINTS))  # slices without shrink masks: GPU-delegate friendly
    y = tf.reshape(pts[:, :, 1:2], (-1, NUM_MAP_POINTS))
    ok = (x >= 0) & (x < size) & (y >= 0) & (y < size)
    idx = tf.where(ok, y * size + x, -tf.ones_like(x))  # one_hot of -1 is all zeros
    hit = tf.reduce_max(tf.one_hot(idx, size * size, dtype=landmarks.dtype), axis=1)
    return tf.reshape(hit * (FOREGROUND - BACKGROUND) + BACKGROUND, (-1, size, size))


def map_from_points(points: np.ndarray, size: int = 120) -> np.ndarray:
    """The 18 map points ``(B, 18, 2)`` (NaN = not visible: marks nothing) → maps ``(B, size, size)`` float32;
    ``landmark_map(lm) == map_from_points(map_points(lm))``. For partial landmark sets (AFLW's 21 points)."""
    pts = np.asarray(points, np.float64)
    ok = np.isfinite(pts).all(axis=-1)
    px = np.floor(np.where(ok[..., None], pts, -1.0) + 0.5).astype(np.int64)
    out = np.full((pts.shape[0], size, size), BACKGROUND, np.float32)
    x, y = px[..., 0], px[..., 1]
    ok &= (x >= 0) & (x < size) & (y >= 0) & (y < size)
    b = np.broadcast_to(np.arange(pts.shape[0])[:, None], ok.shape)
    out[b[ok], y[ok], x[ok]] = FOREGROUND
    return out


def tf_map_from_points(points, size: int = 120):
    """TF twin of :func:`map_from_points` (scatter-based: the fast one for training batches)."""
    import tensorflow as tf

    finite = tf.reduce_all(tf.math.is_finite(points), axis=-1)
    pts = tf.cast(tf.floor(tf.where(finite[..., None], points, -1.0) + 0.5), tf.int32)
    b = tf.shape(pts)[0]
    x, y = pts[..., 0], pts[..., 1]
    ok = finite & (x >= 0) & (x < size) & (y >= 0) & (y < size)
    cells = b * size * size
    flat = tf.where(ok, (tf.range(b)[:, None] * size + y) * size + x, cells)
    hit = tf.math.unsorted_segment_max(tf.ones_like(flat, tf.float32), flat, cells + 1)[:cells]
    return tf.reshape(tf.where(hit > 0, FOREGROUND, BACKGROUND), (b, size, size))
