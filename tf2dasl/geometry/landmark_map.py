"""2DASL's landmark map: the 4th input channel, ``(size, size)`` of -1 with +1 at 18 landmark pixels (numpy).

The 18 points are a subset of the 68 (0-based): brows 17, 19, 21, 22, 24, 26; eyes 36, mid(37, 40), 39,
42, mid(43, 46), 45; nose 31, 30, 35; mouth 48, mid(62, 66), 54. Points are crop pixels (0-based,
y down); a point outside the crop (or NaN: not visible) marks nothing; points are rounded half up
(``floor(x + 0.5)``).

One builder per framework: :func:`map_from_points` here, :func:`tf2dasl.geometry.tf_ops.map_from_points` in
TensorFlow (tested equal); :func:`landmark_map` is the builder applied to :func:`map_points`. The ONNX export
writes the same rule as graph nodes (:func:`tf2dasl.export.onnx_graph.landmark_map_nodes`: ONNX has no one-hot
product that tf2onnx could give it).
"""
from __future__ import annotations

import numpy as np

#: (a, b) pairs: the map point is the mean of landmarks a and b (a == b for plain landmarks).
MAP_POINT_PAIRS = ((17, 17), (19, 19), (21, 21), (22, 22), (24, 24), (26, 26),
                   (36, 36), (37, 40), (39, 39), (42, 42), (43, 46), (45, 45),
                   (31, 31), (30, 30), (35, 35), (48, 48), (62, 66), (54, 54))
NUM_MAP_POINTS = len(MAP_POINT_PAIRS)

#: The 2DASL training script's per-point weights: 2.0 nose tip and mouth centre, 1.0 eye centres and
#: mouth corners, 0.5 the others (same order as MAP_POINT_PAIRS).
MAP_POINT_WEIGHTS = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
                              0.5, 1.0, 0.5, 0.5, 1.0, 0.5,
                              0.5, 2.0, 0.5, 1.0, 2.0, 1.0], np.float32)

BACKGROUND, FOREGROUND = -1.0, 1.0


def pair_indices(pairs=MAP_POINT_PAIRS) -> tuple[np.ndarray, np.ndarray]:
    """The ``a`` and ``b`` indices ``(18,)`` int32 of map point pairs (shared with the TF twin)."""
    return np.array([a for a, _ in pairs], np.int32), np.array([b for _, b in pairs], np.int32)


def map_points(landmarks: np.ndarray, pairs=MAP_POINT_PAIRS) -> np.ndarray:
    """``(B, K, >=2)`` landmarks → the 18 map points ``(B, 18, 2)``, the mean of each pair of ``pairs`` (indices into
    the K points; default: the 68 landmarks' pairs). NaN when either point of a pair is NaN."""
    a, b = pair_indices(pairs)
    lm = np.asarray(landmarks, np.float32)[..., :2]
    return (lm[:, a] + lm[:, b]) / 2


def map_from_points(points: np.ndarray, size: int = 120) -> np.ndarray:
    """Map points ``(B, K, 2)`` crop pixels (NaN = not visible: marks nothing) → maps ``(B, size, size)`` float32."""
    pts = np.asarray(points, np.float64)
    ok = np.isfinite(pts).all(axis=-1)
    px = np.floor(np.where(ok[..., None], pts, -1.0) + 0.5).astype(np.int64)
    out = np.full((pts.shape[0], size, size), BACKGROUND, np.float32)
    x, y = px[..., 0], px[..., 1]
    ok &= (x >= 0) & (x < size) & (y >= 0) & (y < size)
    b = np.broadcast_to(np.arange(pts.shape[0])[:, None], ok.shape)
    out[b[ok], y[ok], x[ok]] = FOREGROUND
    return out


def landmark_map(landmarks: np.ndarray | None, size: int = 120, batch: int | None = None) -> np.ndarray:
    """Crop-pixel landmarks ``(B, 68, >=2)`` → maps ``(B, size, size)`` float32; ``None`` → ``batch`` empty maps
    (all -1: what a 4-channel model's first pass sees)."""
    if landmarks is None:
        return np.full((batch or 1, size, size), BACKGROUND, np.float32)
    return map_from_points(map_points(landmarks), size)
