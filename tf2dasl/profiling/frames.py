"""Pixel frames of profiling: a source's work image, the crops cut from it, and parameters moved between them.

A crop of ``size`` pixels from the roi box ``[x0, y0, x1, y1]`` of an image samples crop pixel ``j`` at image
position ``x0 + k (j + 0.5) - 0.5`` (``k = (x1 - x0) / size``; pixel centres at integers: what ``cv2.resize`` of
the box does, and :func:`tf2dasl.geometry.roi.crop_image` up to its rounding of the box). The geometry functions
(:func:`~tf2dasl.geometry.camera.crop_to_image`, :func:`~tf2dasl.geometry.camera.reframe_params`) map crop pixel
``j`` to ``x0 + k j``; fed the *pixel roi* ``[x0, y0, x1, y1] + (k - 1) / 2`` they are exact for such crops, so a
view's parameters put its mesh on its pixels without the half-pixel slip of a rescaled crop.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..geometry.camera import reframe_params
from ..geometry.conventions import CropConvention


def pixel_roi(rois: np.ndarray, size: int) -> np.ndarray:
    """Roi boxes ``(B, 4)`` → the boxes the geometry functions need for crops sampled at pixel centres (see the
    module doc)."""
    r = np.asarray(rois, np.float64).reshape(-1, 4)
    k = (r[:, 2] - r[:, 0]) / size
    return r + ((k - 1) / 2)[:, None]


def crop_affine(roi, size: int) -> np.ndarray:
    """``(2, 3)`` crop pixel → image pixel map of a square roi box (``x = x0 + k (j + 0.5) - 0.5``)."""
    x0, y0, x1, _ = (float(v) for v in roi)
    k = (x1 - x0) / size
    return np.array([[k, 0.0, x0 + 0.5 * k - 0.5], [0.0, k, y0 + 0.5 * k - 0.5]])


def cut_crop(image: np.ndarray, roi, size: int, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    """``(size, size, C)`` crop of ``image`` at the roi box (bilinear, pixel centres; ``border`` outside)."""
    return cv2.warpAffine(image, crop_affine(roi, size), (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=border)


def move_params(params: np.ndarray, rois_from: np.ndarray, rois_to: np.ndarray, size: int,
                convention: CropConvention) -> np.ndarray:
    """Raw params ``(B, 62)`` of faces in the crops of ``rois_from (B, 4)`` → the params that put them on the same
    image pixels in the crops of ``rois_to (B, 4)`` (both sampled at pixel centres)."""
    return reframe_params(params, pixel_roi(rois_from, size), pixel_roi(rois_to, size), size, convention)
