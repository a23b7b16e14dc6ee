"""Landmark error metrics (numpy only): normalised mean errors, 3DDFA's yaw-bin table, cumulative error curves.

Every per-face metric returns fractions ``(N,)``; tables and JSON report percent.
"""
from __future__ import annotations

import numpy as np

YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))
BIN_NAMES = ("yaw_0_30", "yaw_30_60", "yaw_60_90")
#: AFLW2000-3D's ``pt3d_68`` z grows towards the camera like ours (checked on the dev slice: centred
#: predicted and ground-truth z of the imported mb05 correlate at +0.99), so no flip.
PT3D_Z_SIGN = 1.0
#: 300-W's failure threshold on the inter-ocular NME (fraction), also the upper limit of the CED's AUC.
FAILURE_NME = 0.08


def box_size(points: np.ndarray) -> np.ndarray:
    """``sqrt(w * h)`` of the x-y bounding box of each face's points ``(N, K, >=2)`` → ``(N,)``."""
    p = np.asarray(points, np.float64)[..., :2]
    wh = p.max(axis=1) - p.min(axis=1)
    return np.sqrt(wh[:, 0] * wh[:, 1])


def nme_bbox(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-face NME ``(N,)`` (fraction): mean point distance ``(N, 68, D)`` over sqrt(w*h) of gt's 2D box."""
    gt = np.asarray(gt, np.float64)
    pred = np.asarray(pred, np.float64)
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=1) / box_size(gt)


def nme_interocular(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """300-W's NME ``(N,)`` (fraction): mean 2D error over the outer-eye-corner distance (points 36 and 45)."""
    gt = np.asarray(gt, np.float64)[..., :2]
    d = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
    return np.linalg.norm(np.asarray(pred, np.float64)[..., :2] - gt, axis=-1).mean(axis=1) / d


def nme_3d(pred: np.ndarray, pt3d: np.ndarray) -> np.ndarray:
    """3D 68-point NME ``(N,)`` (fraction): z of both sides centred on their mean (depth has no absolute origin),
    ground-truth z in our convention (``PT3D_Z_SIGN``), normalised by sqrt(w*h) of the ground truth's 2D box."""
    gt = np.array(pt3d, np.float64)
    gt[..., 2] *= PT3D_Z_SIGN
    p = np.array(pred, np.float64)
    gt[..., 2] -= gt[..., 2].mean(axis=1, keepdims=True)
    p[..., 2] -= p[..., 2].mean(axis=1, keepdims=True)
    return nme_bbox(p, gt)


def yaw_masks(yaws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks ``(N,)`` of the three |yaw| bins [0, 30], (30, 60], > 60 (degrees), as 3DDFA's ``ana``."""
    a = np.abs(np.asarray(yaws, np.float64))
    return a <= 30, (a > 30) & (a <= 60), a > 60


def yaw_table(nme: np.ndarray, yaws: np.ndarray) -> dict[str, float]:
    """Per-face NME (fraction) → percent per |yaw| bin and their balanced mean (3DDFA's ``ana``)."""
    nme = np.asarray(nme, np.float64)
    out = {name: float(np.mean(nme[m]) * 100) if m.any() else float("nan")
           for name, m in zip(BIN_NAMES, yaw_masks(yaws))}
    out["mean"] = float(np.nanmean([out[n] for n in BIN_NAMES]))
    return out


def bin_counts(yaws: np.ndarray) -> dict[str, int]:
    """Faces per |yaw| bin, by bin name."""
    return {name: int(m.sum()) for name, m in zip(BIN_NAMES, yaw_masks(yaws))}


def ced(nme: np.ndarray, limit: float, steps: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution of per-face errors ``(N,)`` (inf for a miss): thresholds ``x (steps + 1,)``
    from 0 to ``limit`` and the fraction of faces ``y`` with an error at most ``x``."""
    e = np.sort(np.asarray(nme, np.float64))
    x = np.linspace(0.0, limit, steps + 1)
    y = np.searchsorted(e, x, side="right") / max(e.size, 1)
    return x, y


def ced_auc(nme: np.ndarray, limit: float = FAILURE_NME, steps: int = 1000) -> float:
    """Area under the cumulative error distribution of per-face NMEs ``(N,)`` (fractions; inf for a miss)
    from 0 to ``limit``, divided by ``limit`` (1.0: every face error-free)."""
    if np.asarray(nme).size == 0:
        return float("nan")
    x, y = ced(nme, limit, steps)
    return float(np.trapezoid(y, x) / limit) if hasattr(np, "trapezoid") else float(np.trapz(y, x) / limit)
