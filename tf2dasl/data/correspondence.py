"""Which model point is each annotated point? Fitted from annotations and a model's meshes (numpy only).

A *model point* is the mean of two mesh vertices ``(a, b)`` (``a == b``: one vertex). For every annotated point
``k`` the candidates are every single vertex and one given pair (e.g. the 68-point definition's ``mid(62, 66)``
for a mouth centre, which follows the lips apart); the one whose projection lies closest to the annotation on
average — over the faces where ``k`` is visible, distances over the face size — is ``k``'s model point. Used for
AFLW's 21 points, whose definitions differ from the 68-point ones (``tf2dasl fit-landmarks``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def visible_face_size(points: np.ndarray) -> np.ndarray:
    """``(F, K, 2)`` points with NaN = not visible → ``(F,)`` ``sqrt(w * h)`` of the visible points' box."""
    lo, hi = np.nanmin(points, axis=1), np.nanmax(points, axis=1)
    wh = np.maximum(hi - lo, 1e-6)
    return np.sqrt(wh[:, 0] * wh[:, 1])


def point_errors(predicted: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean distance / visible face size (%) per point: ``predicted (F, K, 2)`` vs ``points (F, K, 2)`` (NaN)."""
    d = np.linalg.norm(predicted - points, axis=-1) / visible_face_size(points)[:, None]
    return 100.0 * np.nanmean(d, axis=0)


def pair_points(vertices_2d: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """``(F, N, D)`` vertices, ``pairs (K, 2)`` → ``(F, K, D)`` the mean of each pair."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    return (vertices_2d[:, pairs[:, 0]] + vertices_2d[:, pairs[:, 1]]) / 2


@dataclass
class VertexFit:
    """``pairs (K, 2)`` the fitted model point per annotated point (vertex pair; equal for one vertex),
    ``error (K,)`` its mean distance / face size (%), ``pair_error (K,)`` the given pair's, ``count (K,)`` faces
    where the point was visible."""

    pairs: np.ndarray
    error: np.ndarray
    pair_error: np.ndarray
    count: np.ndarray


class VertexFitter:
    """Accumulates, chunk by chunk of faces, each (point, candidate) summed normalised distance."""

    def __init__(self, num_vertices: int, candidate_pairs: np.ndarray):
        self.pairs = np.asarray(candidate_pairs, np.int64).reshape(-1, 2)
        k = len(self.pairs)
        self.sum = np.zeros((k, num_vertices), np.float64)
        self.pair_sum = np.zeros(k, np.float64)
        self.count = np.zeros(k, np.int64)

    def add(self, vertices_2d: np.ndarray, points: np.ndarray) -> None:
        """``vertices_2d (F, N, 2)`` projected mesh vertices, ``points (F, K, 2)`` annotations (NaN = invisible),
        both in the same pixels."""
        size = visible_face_size(points)
        paired = pair_points(vertices_2d, self.pairs)
        for k in range(points.shape[1]):
            vis = np.isfinite(points[:, k, 0])
            if not vis.any():
                continue
            d = np.linalg.norm(vertices_2d[vis] - points[vis, k][:, None, :], axis=-1)   # (F_k, N)
            self.sum[k] += (d / size[vis, None]).sum(axis=0)
            self.pair_sum[k] += (np.linalg.norm(paired[vis, k] - points[vis, k], axis=-1) / size[vis]).sum()
            self.count[k] += int(vis.sum())

    def result(self) -> VertexFit:
        n = np.maximum(self.count, 1)
        mean = self.sum / n[:, None]
        best = np.argmin(mean, axis=1)
        single = mean[np.arange(len(best)), best]
        pair = self.pair_sum / n
        use_pair = pair < single
        pairs = np.where(use_pair[:, None], self.pairs, np.stack([best, best], 1))
        return VertexFit(pairs.astype(np.int64), 100.0 * np.minimum(single, pair), 100.0 * pair, self.count.copy())
