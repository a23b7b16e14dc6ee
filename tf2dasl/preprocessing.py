"""The network-input contract of a model, in numpy (no TensorFlow): crop normalisation and the landmark-map channel.

A regressor sees ``(B, S, S, C)`` float32: the ``S x S`` crop in the model's colour order (BGR for every model
tf2dasl knows: images are read with OpenCV), normalised as ``(x - norm_mean) * norm_scale``, and with
``C == 4`` 2DASL's landmark map (already in [-1, 1]; empty = all -1) as the 4th channel.

This module is the numpy twin used where TensorFlow is not (the TFLite and ONNX runtimes, apps that feed
exported graphs); the Keras twin is :class:`tf2dasl.models.preprocessor.CropPreprocessor` (tested against it).
"""
from __future__ import annotations

import numpy as np

from .geometry.landmark_map import landmark_map


def normalize_crops(crops: np.ndarray, norm_mean: float, norm_scale: float) -> np.ndarray:
    """uint8 (or 0..255 float) crops ``(B, S, S, 3)`` → float32 ``(x - norm_mean) * norm_scale``."""
    return (np.asarray(crops, np.float32) - np.float32(norm_mean)) * np.float32(norm_scale)


def network_input(crops: np.ndarray, norm_mean: float, norm_scale: float, channels: int,
                  maps: np.ndarray | None = None) -> np.ndarray:
    """Crops ``(B, S, S, 3)`` (+ landmark maps ``(B, S, S)``, None: empty) → the regressor's ``(B, S, S, channels)``."""
    x = normalize_crops(crops, norm_mean, norm_scale)
    if channels == 4:
        if maps is None:
            maps = landmark_map(None, x.shape[1], batch=x.shape[0])
        x = np.concatenate([x, np.asarray(maps, np.float32)[..., None]], axis=-1)
    return x
