"""The 62 parameters fitted to a dense mesh (numpy): mirror images of a fit and the flip average of two fits.

A face's mirror image (``crop[:, ::-1]``) is the same face seen mirrored: its mesh is the fitted mesh with x
reflected *and* every vertex renamed by its mirror partner (the left eye corner becomes the right one). The
morphable model's bases are not exactly closed under that mirror, so a mirrored mesh is brought back into the
model by least squares, :meth:`MeshFitter.fit`: the 3x4 camera ``P = [M | t]`` and the 50 shape and expression
coefficients, alternately (each step linear; a few steps from the mean coefficients of the meshes averaged).

* :meth:`MeshFitter.mirror`: the parameters of a fit's mirror image, in the mirrored crop;
* :meth:`MeshFitter.flip_average`: the teacher's fit of a crop averaged with its fit of the crop's mirror image
  mirrored back, vertex by vertex, refitted (the 3D counterpart of the flip-averaged teacher landmarks of
  :mod:`tf2dasl.data.teacher`);
* :meth:`MeshFitter.flip_fit_views`: a teacher's two labels of a crop (the crop's, its mirror image's) made one
  fit: the flip average, and its mirror image (``teacher_flip_fit`` in training).

Meshes are ``(B, N, 3)`` points-last in crop pixels of an ``S``-pixel crop (y down, :mod:`tf2dasl.geometry`).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..geometry.camera import crop_to_model, model_to_crop
from ..geometry.conventions import CropConvention
from ..geometry.morphable_model import EXPRESSION, NUM_POSE, SHAPE, MorphableModel

#: fit on every n-th vertex of the dense mesh (38,365 / 8: ample for 50 coefficients and 12 camera numbers)
FIT_VERTEX_STEP = 8
#: alternating steps (camera | coefficients); the mean of two fits starts within ~0.1 px of the optimum
FIT_STEPS = 4
#: a vertex whose mirror partner lies further than this multiple of the median partner distance has none
#: (the mean shape's own asymmetry is far below it)
MIRROR_PAIR_TOLERANCE = 20.0
#: faces fitted at once by :meth:`MeshFitter.flip_fit_views` (bounds its memory: ~120 MB per array of fit vertices)
FIT_CHUNK = 1024


def mirror_permutation(mean_shape: np.ndarray) -> np.ndarray:
    """``(N,)`` the mirror partner of every vertex of a left/right-symmetric ``mean_shape (N, 3)`` (x across the
    face): the nearest vertex to its reflection in the symmetry plane (re-centred on the pairs found)."""
    m = np.asarray(mean_shape, np.float64).reshape(-1, 3)
    tree = cKDTree(m)
    centre = (m[:, 0].min() + m[:, 0].max()) / 2
    for _ in range(2):
        flipped = m.copy()
        flipped[:, 0] = 2 * centre - m[:, 0]
        dist, pair = tree.query(flipped)
        centre = float(np.mean((m[:, 0] + m[pair, 0]) / 2))
    if np.max(dist) > MIRROR_PAIR_TOLERANCE * max(np.median(dist), 1e-9) + 1e-6 * float(np.ptp(m[:, 0])):
        raise ValueError("the mean shape is not left/right symmetric: no mirror partner for some vertices")
    return pair.astype(np.int64)


def _fit_affine(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(B, 3, 4)`` least-squares affine maps ``[M | t]`` with ``M @ source_i + t ≈ target_i`` for point sets
    ``source``, ``target`` ``(B, n, 3)`` (normal equations of the homogeneous points)."""
    h = np.concatenate([source, np.ones(source.shape[:2] + (1,))], axis=2)          # (B, n, 4)
    ht = np.transpose(h, (0, 2, 1))
    gram, rhs = ht @ h, ht @ target                                                 # (B, 4, 4), (B, 4, 3)
    return np.transpose(np.linalg.solve(gram, rhs), (0, 2, 1))


class MeshFitter:
    """Least-squares fits of the 62 parameters to dense meshes of one morphable model (see the module doc).

    ``mm``: a dense :class:`~tf2dasl.geometry.morphable_model.MorphableModel`; ``size``, ``convention``: the crop
    the parameters live in. Fits use every :data:`FIT_VERTEX_STEP`-th vertex (``fit_vertices``)."""

    def __init__(self, mm: MorphableModel, size: int, convention: CropConvention):
        mm.require_dense()
        self.mm, self.size, self.convention = mm, int(size), convention
        self.permutation = mirror_permutation(mm.u.reshape(-1, 3))
        self.fit_vertices = np.arange(0, mm.num_vertices, FIT_VERTEX_STEP)
        self._bases = {name: self._rows(idx) for name, idx in
                       (("fit", self.fit_vertices), ("partners", self.permutation[self.fit_vertices]))}
        u, basis = self._bases["fit"]
        self._u, self._basis = u.reshape(-1, 3), basis
        self._pinv = np.linalg.pinv(basis)                                              # (50, 3n)

    def _rows(self, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mean ``(3n,)`` and the shape + expression basis ``(3n, 50)`` of ``vertices (n,)``, float64."""
        rows = (vertices[:, None] * 3 + np.arange(3)).reshape(-1)
        return (self.mm.u[rows].astype(np.float64),
                np.concatenate([self.mm.w_shp[rows], self.mm.w_exp[rows]], axis=1).astype(np.float64))

    def _points(self, params: np.ndarray, which: str) -> np.ndarray:
        """Params ``(B, 62)`` → crop pixels ``(B, n, 3)`` of the fit vertices (``"fit"``) or of their mirror
        partners (``"partners"``)."""
        p = np.asarray(params, np.float64)
        u, basis = self._bases[which]
        shape = (u + p[:, NUM_POSE:] @ basis.T).reshape(len(p), -1, 3)
        cam = p[:, :NUM_POSE].reshape(-1, 3, 4)
        return model_to_crop(shape @ np.transpose(cam[:, :, :3], (0, 2, 1)) + cam[:, None, :, 3], self.size,
                             self.convention).astype(np.float64)

    def _mirrored_back(self, params: np.ndarray) -> np.ndarray:
        """Params ``(B, 62)`` of faces in mirrored crops → their fit vertices in the plain crops ``(B, n, 3)``."""
        pts = self._points(params, "partners")
        pts[..., 0] = (self.size - 1) - pts[..., 0]
        return pts

    # ------------------------------------------------------------------ fits
    def fit(self, target: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Params ``(B, 62)`` whose fit vertices best match ``target (B, n, 3)`` (crop pixels of the vertices
        ``fit_vertices``), from the coefficients of ``start (B, 62)``."""
        target = crop_to_model(np.asarray(target, np.float64), self.size, self.convention).astype(np.float64)
        coef = np.asarray(start, np.float64)[:, NUM_POSE:].copy()                     # (B, 50)
        b, n = target.shape[:2]
        for step in range(FIT_STEPS + 1):
            shape = self._u + (coef @ self._basis.T).reshape(b, n, 3)                 # model space
            cam = _fit_affine(shape, target)                                          # (B, 3, 4)
            if step == FIT_STEPS:
                break
            m, t = cam[:, :, :3], cam[:, :, 3]
            local = (target - t[:, None]) @ np.transpose(np.linalg.inv(m), (0, 2, 1))  # M^-1 (X - t)
            coef = (local - self._u).reshape(b, -1) @ self._pinv.T
        return np.concatenate([cam.reshape(b, NUM_POSE), coef], axis=1).astype(np.float32)

    def fit_points(self, params: np.ndarray) -> np.ndarray:
        """Params ``(B, 62)`` → the fit vertices in crop pixels ``(B, n, 3)`` (what :meth:`fit` matches)."""
        return self._points(params, "fit")

    # ------------------------------------------------------------------ mirror images
    def mirror(self, params: np.ndarray) -> np.ndarray:
        """Params ``(B, 62)`` of faces in their crops → params of the same faces in the mirrored crops."""
        return self.fit(self._mirrored_back(params), params)

    def flip_average(self, plain: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
        """A teacher's params for crops ``plain (B, 62)`` and for their mirror images ``mirrored (B, 62)`` → params
        of the mean of the plain mesh and the mirrored mesh mirrored back, in the plain crops ``(B, 62)``."""
        plain, mirrored = np.asarray(plain, np.float32), np.asarray(mirrored, np.float32)
        start = plain.copy()
        start[:, SHAPE] = (plain[:, SHAPE] + mirrored[:, SHAPE]) / 2
        start[:, EXPRESSION] = (plain[:, EXPRESSION] + mirrored[:, EXPRESSION]) / 2
        return self.fit((self._points(plain, "fit") + self._mirrored_back(mirrored)) / 2, start)

    def flip_fit_views(self, labels: np.ndarray) -> np.ndarray:
        """A teacher's labels ``(N, 2, 62)`` — its params for each crop and for the crop's mirror image — → both views
        as one fit ``(N, 2, 62)``: the plain view's :meth:`flip_average`, the mirrored view's that fit's
        :meth:`mirror` (so that the two labels are exact mirror images of each other)."""
        labels = np.asarray(labels, np.float32)
        out = np.empty_like(labels)
        for i in range(0, len(labels), FIT_CHUNK):
            part = labels[i:i + FIT_CHUNK]
            out[i:i + FIT_CHUNK, 0] = self.flip_average(part[:, 0], part[:, 1])
            out[i:i + FIT_CHUNK, 1] = self.mirror(out[i:i + FIT_CHUNK, 0])
        return out
