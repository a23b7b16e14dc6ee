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


def image_to_crop(points: np.ndarray, roi_boxes: np.ndarray, size: int, dtype=np.float32) -> np.ndarray:
    """Inverse of :func:`crop_to_image` for ``(B, N, 2|3)`` points, computed in ``dtype``."""
    p = np.array(points, dtype=dtype, copy=True)
    roi = np.asarray(roi_boxes, dtype).reshape(-1, 4)
    sx = (roi[:, 2] - roi[:, 0]) / size
    sy = (roi[:, 3] - roi[:, 1]) / size
    p[..., 0] = (p[..., 0] - roi[:, None, 0]) / sx[:, None]
    p[..., 1] = (p[..., 1] - roi[:, None, 1]) / sy[:, None]
    if p.shape[-1] == 3:
        p[..., 2] /= ((sx + sy) / 2)[:, None]
    return p


def reframe_params(params: np.ndarray, rois_from: np.ndarray, rois_to: np.ndarray, size: int,
                   convention: CropConvention = CROP_OFFSET_V2) -> np.ndarray:
    """Params ``(B, >=12)`` regressed in the crops of ``rois_from (B, 4)`` → the params that put the same face at
    the same image pixels through the crops of ``rois_to (B, 4)``; only the 12 pose params change.

    The image point of a model point ``S`` is ``k * (P_r . S + t_r - c_r) + o`` for the rows x, z and
    ``k * (size + y_flip_offset - P_y . S - t_y) + o_y`` for y (:func:`model_to_crop`, :func:`crop_to_image`;
    ``k`` the roi's scale, ``o`` its corner, ``c`` the convention's shift). So the rows scale by
    ``k_from / k_to`` and the translations move with the rois. With ``rois_to = [0, 0, size, size]`` the crop
    frame *is* the image frame: params that no longer depend on the crop (what a video filter smooths).
    """
    p = np.array(params, dtype=np.float64, copy=True)
    a = np.asarray(rois_from, np.float64).reshape(-1, 4)
    b = np.asarray(rois_to, np.float64).reshape(-1, 4)
    kx_a, ky_a = (a[:, 2] - a[:, 0]) / size, (a[:, 3] - a[:, 1]) / size
    kx_b, ky_b = (b[:, 2] - b[:, 0]) / size, (b[:, 3] - b[:, 1]) / size
    rx, ry, rz = kx_a / kx_b, ky_a / ky_b, ((kx_a + ky_a) / 2) / ((kx_b + ky_b) / 2)
    P = p[:, :12].reshape(-1, 3, 4)
    xs, yo, zs = convention.x_shift, size + convention.y_flip_offset, convention.z_shift
    tx = xs + (kx_a * (P[:, 0, 3] - xs) + a[:, 0] - b[:, 0]) / kx_b
    ty = yo - (ky_a * (yo - P[:, 1, 3]) + a[:, 1] - b[:, 1]) / ky_b
    tz = zs + rz * (P[:, 2, 3] - zs)
    P[:, 0, :3] *= rx[:, None]
    P[:, 1, :3] *= ry[:, None]
    P[:, 2, :3] *= rz[:, None]
    P[:, :, 3] = np.stack([tx, ty, tz], 1)
    p[:, :12] = P.reshape(-1, 12)
    return p.astype(np.asarray(params).dtype if np.asarray(params).dtype.kind == "f" else np.float32)


def resize_points(points: np.ndarray, s: float, dtype=np.float32) -> np.ndarray:
    """Points ``(..., 2|3)`` of one pixel grid in the grid resized by ``s`` (pixel centres stay centres:
    ``x' = s * x + (s - 1) / 2``; z, when present, is scaled by ``s``). ``s = reduction`` maps a reduced
    decode back to the full image, ``s = 1 / reduction`` the other way. Computed in ``dtype``."""
    p = np.array(points, dtype, copy=True)
    p[..., :2] = p[..., :2] * s + (s - 1.0) / 2.0
    if p.shape[-1] == 3:
        p[..., 2] *= s
    return p
