"""Rigid alignment of two point sets (numpy + scipy): Horn's closed-form rotation and 2DASL's ICP.

2DASL's ``nme_for_3DReconstruction.m`` aligns a predicted mesh to the ground truth before measuring it: both
sets centred, then repeatedly each ground-truth point is matched to its nearest predicted point
(:class:`scipy.spatial.cKDTree`), the prediction is rotated by Horn's quaternion solution for those matches and
re-centred, until the mean squared matching distance changes by at most a tolerance.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

#: stop when the mean squared matching distance (squared pixels) changes by at most this
ICP_TOLERANCE = 0.01
#: safety stop; on the AFLW2000-3D dev slice ICP converges in 8 iterations on average, 23 at most
ICP_MAX_ITERATIONS = 200


def horn_rotation(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The rotation ``R (3, 3)`` minimising ``sum ||R @ (s - mean(src)) - (d - mean(dst))||^2`` over paired points
    ``src, dst (K, 3)``: Horn (1987), the unit quaternion that is the top eigenvector of the 4x4 matrix built from
    the cross-covariance. Always a proper rotation (det +1), never a reflection."""
    a = np.asarray(src, np.float64)
    b = np.asarray(dst, np.float64)
    S = (a - a.mean(axis=0)).T @ (b - b.mean(axis=0))
    (sxx, sxy, sxz), (syx, syy, syz), (szx, szy, szz) = S
    N = np.array([[sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
                  [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
                  [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
                  [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz]])
    w, v = np.linalg.eigh(N)
    q0, qx, qy, qz = v[:, np.argmax(w)]
    return np.array([
        [q0 * q0 + qx * qx - qy * qy - qz * qz, 2 * (qx * qy - q0 * qz), 2 * (qx * qz + q0 * qy)],
        [2 * (qy * qx + q0 * qz), q0 * q0 - qx * qx + qy * qy - qz * qz, 2 * (qy * qz - q0 * qx)],
        [2 * (qz * qx - q0 * qy), 2 * (qz * qy + q0 * qx), q0 * q0 - qx * qx - qy * qy + qz * qz]])


def rigid_icp(moving: np.ndarray, fixed: np.ndarray, tol: float = ICP_TOLERANCE,
              max_iterations: int = ICP_MAX_ITERATIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Align ``moving (M, 3)`` to ``fixed (K, 3)`` as 2DASL's reconstruction protocol does (module docstring).

    Returns ``(moved (M, 3), fixed_centred (K, 3), R (3, 3), iterations)``: both sets centred on their means,
    ``moved = R @ (moving - mean)`` re-centred, ``R`` the accumulated rotation. Correspondences are nearest
    neighbours, so the point counts may differ."""
    fixed_c = np.asarray(fixed, np.float64)
    fixed_c = fixed_c - fixed_c.mean(axis=0)
    moved = np.asarray(moving, np.float64)
    moved = moved - moved.mean(axis=0)
    R_total = np.eye(3)
    previous = None
    iterations = 0
    while iterations < max_iterations:
        dist, idx = cKDTree(moved).query(fixed_c)
        err = float(np.mean(dist ** 2))
        if previous is not None and abs(previous - err) <= tol:
            break
        previous = err
        R = horn_rotation(moved[idx], fixed_c)
        moved = moved @ R.T
        moved -= moved.mean(axis=0)
        R_total = R @ R_total
        iterations += 1
    return moved, fixed_c, R_total, iterations
