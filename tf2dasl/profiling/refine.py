"""Optional refinement of a fit to a face's manual 68 points (300-W faces): the camera and the expression, or also
the identity, moved towards the annotation under a prior that keeps them near the fit.

With ``params`` the fit and ``x (K, 2)`` the manual points (crop pixels) of the 68 landmarks ``used``, alternately
(each step linear least squares):

* the top two camera rows ``[M_12 | t_12]`` (8 numbers) from the points, the shape held;
* the coefficients ``c`` (expression, and shape when ``shape`` is on) minimising
  ``sum_k |proj(c)_k - x_k|^2 + prior * sum_j ((c_j - c0_j) / std_j)^2 * (face size / 100)^2`` — ``std`` the model's
  whitening: a coefficient moves by about one standard deviation only for a few pixels of gain per 100 px of face;

then the third camera row is rebuilt from the first two (their cross product, normalised to their mean scale: a
proper scaled rotation) with the depth offset kept. 300-W's jaw points follow the face's visible outline, not the
3D jaw, so the default ``used`` leaves them out (17-67); on near-frontal faces the two are close, and
``ALL_POINTS`` keeps them. :func:`refine_teacher_labels` does the same, jaw included, for a training run's teacher
labels of its 68-point faces near frontal (``teacher_refine_max_yaw``).
"""
from __future__ import annotations

import numpy as np

from ..data.teacher import VIEWS
from ..geometry.camera import crop_to_model
from ..geometry.conventions import CropConvention
from ..geometry.morphable_model import EXPRESSION, NUM_POSE, SHAPE, MorphableModel
from ..geometry.pose import params_to_pose

#: the 68 points a refinement uses by default: all but 300-W's jaw outline
INNER_POINTS = np.arange(17, 68)
#: all 68, the jaw included (``data.profiled.refine_jaw``)
ALL_POINTS = np.arange(68)
#: alternating steps (camera | coefficients)
REFINE_STEPS = 5
#: the prior is stated per 100 px of face size
PRIOR_FACE_SIZE = 100.0


def refine_to_points(mm: MorphableModel, params: np.ndarray, points: np.ndarray, size: int, convention: CropConvention,
                     prior: float = 1.0, shape: bool = False, used: np.ndarray = INNER_POINTS) -> np.ndarray:
    """Raw ``params (62,)`` of a face in a ``size``-pixel crop refined to its manual 68 points ``(68, 2)`` (crop
    pixels; NaN = not annotated) — see the module doc. Returns ``(62,)`` float32."""
    p = np.asarray(params, np.float64).copy()
    pts = np.asarray(points, np.float64)
    used = np.asarray([i for i in used if np.isfinite(pts[i]).all()])
    if len(used) < 6:
        return p.astype(np.float32)
    target = crop_to_model(np.c_[pts[used], np.zeros(len(used))][None], size, convention)[0, :, :2]   # (K, 2)
    rows = (used[:, None] * 3 + np.arange(3)).reshape(-1)
    u = mm.u_base[rows].astype(np.float64).reshape(-1, 3)
    parts = [mm.w_exp_base[rows]] if not shape else [mm.w_shp_base[rows], mm.w_exp_base[rows]]
    basis = np.concatenate(parts, axis=1).astype(np.float64).reshape(len(used), 3, -1)          # (K, 3, J)
    sl = [EXPRESSION] if not shape else [SHAPE, EXPRESSION]
    coef0 = np.concatenate([p[s] for s in sl])
    std = np.concatenate([np.asarray(mm.param_std, np.float64)[s] for s in sl])
    extent = np.ptp(pts[used], axis=0)
    weight = prior * (np.sqrt(extent[0] * extent[1]) / PRIOR_FACE_SIZE) ** 2 / std ** 2           # (J,)
    cam = p[:NUM_POSE].reshape(3, 4)
    rest = u if shape else u + (mm.w_shp_base[rows].astype(np.float64) @ p[SHAPE]).reshape(-1, 3)   # what is held
    coef = coef0.copy()
    for _ in range(REFINE_STEPS):
        s3 = rest + np.einsum("kdj,j->kd", basis, coef)                                           # (K, 3)
        h = np.c_[s3, np.ones(len(s3))]
        top, *_ = np.linalg.lstsq(h, target, rcond=None)                                          # (4, 2)
        cam[:2] = top.T
        # coefficients: A c ≈ b with A = M_12 basis, b = target - M_12 rest - t_12, plus the prior
        a = np.einsum("ed,kdj->kej", cam[:2, :3], basis).reshape(-1, len(coef))
        b = (target - rest @ cam[:2, :3].T - cam[:2, 3]).reshape(-1)
        coef = np.linalg.solve(a.T @ a + np.diag(weight), a.T @ b + weight * coef0)
    r1, r2 = cam[0, :3], cam[1, :3]
    scale = (np.linalg.norm(r1) + np.linalg.norm(r2)) / 2
    normal = np.cross(r1, r2)
    cam[2, :3] = scale * normal / np.linalg.norm(normal)
    p[:NUM_POSE] = cam.reshape(-1)
    start = 0
    for s in sl:
        n = s.stop - s.start
        p[s] = coef[start:start + n]
        start += n
    return p.astype(np.float32)


def refine_teacher_labels(mm: MorphableModel, labels: np.ndarray, points: np.ndarray, mirrored_points: np.ndarray,
                          size: int, convention: CropConvention, max_yaw: float,
                          prior: float = 1.0) -> tuple[np.ndarray, int]:
    """Teacher labels ``(N, 2, 62)`` (plain, mirrored crop; :mod:`tf2dasl.data.teacher`) of faces with manual 68
    points ``(N, 68, 2)`` in the plain crops' pixels and ``mirrored_points`` in the mirrored crops'
    (:func:`tf2dasl.data.augment.mirror_labels`) → the labels within ``max_yaw`` degrees of frontal refined to those
    points, jaw included (camera and expression, :func:`refine_to_points`). Returns the labels and how many were
    refined."""
    out = np.array(labels, np.float32)
    targets = (np.asarray(points, np.float32), np.asarray(mirrored_points, np.float32))
    refined = 0
    for v in range(len(VIEWS)):
        for i in np.flatnonzero(np.abs(params_to_pose(out[:, v])[:, 0]) <= max_yaw):
            out[i, v] = refine_to_points(mm, out[i, v], targets[v][i], size, convention, prior, used=ALL_POINTS)
            refined += 1
    return out, refined
