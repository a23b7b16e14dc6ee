"""Projection (numpy): model frame → crop pixels → image pixels; see ``tf2dasl.geometry``."""
from __future__ import annotations

import numpy as np

from .conventions import CROP_OFFSET_V2, CropConvention


def model_to_crop(points: np.ndarray, size: int, convention: CropConvention = CROP_OFFSET_V2) -> np.ndarray:
    """Model-frame points ``(B, N, 3)`` (y up) → crop pixels ``(B, N, 3)`` (0-based, y down)."""
    p = np.array(points, dtype=np.float32, copy=True)
    p[..., 0] -= convention.x_shift
    p[..., 1] = size + convention.y_flip_offset - p[..., 1]
    p[..., 2] -= convention.z_shift
    return p


def crop_to_model(points: np.ndarray, size: int, convention: CropConvention = CROP_OFFSET_V2) -> np.ndarray:
    """Inverse of :func:`model_to_crop`."""
    p = np.array(points, dtype=np.float32, copy=True)
    p[..., 0] += convention.x_shift
    p[..., 1] = size + convention.y_flip_offset - p[..., 1]
    p[..., 2] += convention.z_shift
    return p


def crop_to_image(points: np.ndarray, roi_boxes: np.ndarray, size: int) -> np.ndarray:
    """Crop pixels ``(B, N, 2|3)`` → image pixels through roi boxes ``(B, 4)`` ``[x0, y0, x1, y1]``.

    z (when present) is scaled by the mean of the x and y scales, as 3DDFA_V2 does.
    """
    p = np.array(points, dtype=np.float32, copy=True)
    roi = np.asarray(roi_boxes, np.float32).reshape(-1, 4)
    sx = (roi[:, 2] - roi[:, 0]) / size
    sy = (roi[:, 3] - roi[:, 1]) / size
    p[..., 0] = p[..., 0] * sx[:, None] + roi[:, None, 0]
    p[..., 1] = p[..., 1] * sy[:, None] + roi[:, None, 1]
    if p.shape[-1] == 3:
        p[..., 2] *= ((sx + sy) / 2)[:, None]
    return p


def image_to_crop(points: np.ndarray, roi_boxes: np.ndarray, size: int) -> np.ndarray:
    """Inverse of :func:`crop_to_image` for ``(B, N, 2|3)`` points."""
    p = np.array(points, dtype=np.float32, copy=True)
    roi = np.asarray(roi_boxes, np.float32).reshape(-1, 4)
    sx = (roi[:, 2] - roi[:, 0]) / size
    sy = (roi[:, 3] - roi[:, 1]) / size
    p[..., 0] = (p[..., 0] - roi[:, None, 0]) / sx[:, None]
    p[..., 1] = (p[..., 1] - roi[:, None, 1]) / sy[:, None]
    if p.shape[-1] == 3:
        p[..., 2] /= ((sx + sy) / 2)[:, None]
    return p
