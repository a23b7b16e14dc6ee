"""Dense face alignment and 3D face reconstruction errors (numpy + scipy), as 2DASL's evaluation code measures them.

All meshes are ``(N, V, 3)`` image pixels on the same topology (vertex ``i`` of the prediction is vertex ``i``
of the ground truth). Per-face errors are fractions ``(N,)``:

* **dense 2D** (``nme_for_alignment_dense_2d.m``): mean x-y distance over all vertices, divided by ``norm``
  (sqrt(w*h) of the 68 ground-truth landmarks' box);
* **dense 3D**: the same with z, after shifting each mesh's z to start at 0 (:func:`shift_z`; predictions'
  z must be scaled to image pixels like x and y, see :func:`tf2dasl.geometry.camera.crop_to_image`);
* **reconstruction** (``nme_for_3DReconstruction.m``): both meshes z-shifted, every
  :data:`RECONSTRUCTION_STEP`-th vertex, centred, the prediction rigidly aligned by
  :func:`~tf2dasl.evaluate.icp.rigid_icp`; then the mean distance between same-index vertices over
  sqrt(w*h) of the ground-truth mesh's x-y box.
"""
from __future__ import annotations

import numpy as np

from .icp import ICP_TOLERANCE, rigid_icp
from .metrics import box_size

#: the dense metrics, by the names results and plots use
DENSE_METRICS = ("dense_2d", "dense_3d", "reconstruction")
#: 2DASL's reconstruction protocol keeps every 50th vertex (MATLAB ``1:50:end``: vertices 0, 50, 100, ...)
RECONSTRUCTION_STEP = 50


def shift_z(meshes: np.ndarray) -> np.ndarray:
    """``(N, V, 3)`` → a float64 copy whose z starts at 0 on every mesh."""
    m = np.array(meshes, np.float64)
    m[..., 2] -= m[..., 2].min(axis=1, keepdims=True)
    return m


def dense_nme_2d(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Mean x-y vertex distance of ``pred, gt (N, V, >=2)`` over ``norm (N,)`` → ``(N,)``."""
    d = np.asarray(pred, np.float64)[..., :2] - np.asarray(gt, np.float64)[..., :2]
    return np.linalg.norm(d, axis=-1).mean(axis=1) / np.asarray(norm, np.float64)


def dense_nme_3d(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Mean 3D vertex distance of ``pred, gt (N, V, 3)``, each mesh's z shifted to start at 0, over ``norm (N,)``."""
    return np.linalg.norm(shift_z(pred) - shift_z(gt), axis=-1).mean(axis=1) / np.asarray(norm, np.float64)


def reconstruction_nme(pred: np.ndarray, gt: np.ndarray, step: int = RECONSTRUCTION_STEP,
                       tol: float = ICP_TOLERANCE) -> np.ndarray:
    """2DASL's 3D face reconstruction error of ``pred, gt (N, V, 3)`` → ``(N,)`` (module docstring)."""
    pred, gt = shift_z(pred), shift_z(gt)
    norm = box_size(gt)
    out = np.empty(len(gt))
    for i in range(len(gt)):
        moved, fixed, _, _ = rigid_icp(pred[i, ::step], gt[i, ::step], tol=tol)
        out[i] = np.linalg.norm(moved - fixed, axis=1).mean() / norm[i]
    return out


def dense_errors(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray, metrics=DENSE_METRICS) -> dict[str, np.ndarray]:
    """The chosen :data:`DENSE_METRICS` of ``pred, gt (N, V, 3)`` (``norm (N,)``: the 68-landmark box size) by name."""
    fns = {"dense_2d": lambda: dense_nme_2d(pred, gt, norm), "dense_3d": lambda: dense_nme_3d(pred, gt, norm),
           "reconstruction": lambda: reconstruction_nme(pred, gt)}
    return {m: fns[m]() for m in metrics}
