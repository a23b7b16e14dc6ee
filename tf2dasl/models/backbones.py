"""Backbones by name: each maps a normalised ``(B, S, S, C)`` input to a pooled feature ``(B, F)``."""
from __future__ import annotations

import keras

from .mobilenet_v1 import build_mobilenet_v1
from .spec import BACKBONES


def build_backbone(name: str, width: float = 1.0, input_size: int = 120, channels: int = 3) -> keras.Model:
    """Build a backbone. ``mobilenet_v1`` is 3DDFA_V2's; the others are Keras applications (random init)."""
    if name == "mobilenet_v1":
        return build_mobilenet_v1(width, input_size, channels)
    shape = (input_size, input_size, channels)
    if name == "mobilenet_v2":
        return keras.applications.MobileNetV2(input_shape=shape, alpha=width, include_top=False, weights=None,
                                              pooling="avg", name="mobilenet_v2")
    if name == "resnet50":
        return keras.applications.ResNet50(input_shape=shape, include_top=False, weights=None, pooling="avg",
                                           name="resnet50")
    raise ValueError(f"unknown backbone {name!r}; use one of {', '.join(BACKBONES)}")
