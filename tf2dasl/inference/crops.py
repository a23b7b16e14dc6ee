"""The input contract every predictor checks and feeds, in numpy (no TensorFlow).

A predictor takes **crops** ``(B, S, S, 3)`` uint8 in the model's colour order (BGR for every model tf2dasl knows:
images are read with OpenCV) and, for a 4-channel (2DASL) model, optional **landmark maps** ``(B, S, S)`` float32
in [-1, 1] (:func:`tf2dasl.geometry.landmark_map.landmark_map`). Graphs that take normalised crops (TFLite, ONNX)
get ``(x - norm_mean) * norm_scale`` from :func:`normalize_crops`; the Keras twin is
:class:`tf2dasl.models.preprocessor.CropPreprocessor` (tested against it).
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import UserError

#: input channels of a model that takes a landmark map (2DASL's 4-channel models)
MAP_CHANNELS = 4


class InputError(UserError):
    """Crops or maps that a predictor cannot take (one line saying what is wrong)."""


def normalize_crops(crops: np.ndarray, norm_mean: float, norm_scale: float) -> np.ndarray:
    """uint8 (or 0..255 float) crops ``(B, S, S, 3)`` → float32 ``(x - norm_mean) * norm_scale``."""
    return (np.asarray(crops, np.float32) - np.float32(norm_mean)) * np.float32(norm_scale)


def check_crops(crops, size: int | None = None) -> np.ndarray:
    """``crops`` as a uint8 ``(B, S, S, 3)`` array (one ``(S, S, 3)`` crop becomes a batch of one; ``size``: the
    side ``S`` the model takes, None: any square), or an :class:`InputError` naming what is wrong."""
    if isinstance(crops, (str, bytes, bytearray, os.PathLike)):
        raise InputError(f"crops must be a uint8 array (B, S, S, 3), got a {type(crops).__name__}; read and crop "
                         "the images first")
    try:
        crops = np.asarray(crops)
    except (TypeError, ValueError) as exc:
        raise InputError(f"crops must be a uint8 array (B, S, S, 3): {exc}") from None
    if crops.ndim == 3:
        crops = crops[None]
    if crops.dtype != np.uint8:
        raise InputError(f"crops must be uint8 (B, S, S, 3), got {crops.dtype}")
    s = size or (crops.shape[1] if crops.ndim == 4 else -1)
    if crops.ndim != 4 or crops.shape[1:] != (s, s, 3):
        raise InputError(f"crops must have shape (B, {size or 'S'}, {size or 'S'}, 3), got {crops.shape}")
    return crops


def check_maps(maps, batch: int, size: int, channels: int, name: str) -> np.ndarray | None:
    """Landmark maps ``(B, S, S)`` float32 for ``batch`` crops of side ``size``, or None; an :class:`InputError`
    when the model (``name``, ``channels`` input channels) takes none or the shape is wrong."""
    if maps is None:
        return None
    if channels != MAP_CHANNELS:
        raise InputError(f"{name} takes {channels}-channel crops: it has no landmark-map input (pass maps=None)")
    maps = np.asarray(maps, np.float32)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.shape != (batch, size, size):
        raise InputError(f"maps must have shape ({batch}, {size}, {size}) (one map per crop), got {maps.shape}")
    return maps
