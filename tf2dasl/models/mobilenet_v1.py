"""MobileNetV1 backbone, layer for layer 3DDFA_V2's ``models/mobilenet_v1.py`` (so its weights import exactly).

PyTorch's symmetric ``padding=1`` is Keras ``same`` for stride-1 layers; stride-2 layers get an explicit
``ZeroPadding2D(1)`` + ``valid`` convolution (Keras ``same`` would pad them asymmetrically). Only 5 explicit
pads remain, which ONNX Runtime and TFLite run as separate ops. BatchNorm epsilon is PyTorch's 1e-5.
Layer names follow the PyTorch module names with ``.`` → ``_`` (``dw2_1_conv_dw``, ``bn1``, …).
"""
from __future__ import annotations

import keras
from keras import layers

from .spec import STEM_CHANNELS

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1

#: (name, input channels, output channels, stride) at width 1.0 — 3DDFA_V2's block list.
BLOCKS = (("dw2_1", 32, 64, 1), ("dw2_2", 64, 128, 2), ("dw3_1", 128, 128, 1), ("dw3_2", 128, 256, 2),
          ("dw4_1", 256, 256, 1), ("dw4_2", 256, 512, 2), ("dw5_1", 512, 512, 1), ("dw5_2", 512, 512, 1),
          ("dw5_3", 512, 512, 1), ("dw5_4", 512, 512, 1), ("dw5_5", 512, 512, 1), ("dw5_6", 512, 1024, 2),
          ("dw6", 1024, 1024, 1))


def _bn(name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def build_mobilenet_v1(width: float = 1.0, input_size: int = 120, channels: int = 3,
                       name: str = "mobilenet_v1") -> keras.Model:
    """Functional backbone ``(B, S, S, C)`` normalised input → pooled feature ``(B, int(1024 * width))``."""
    inp = keras.Input((input_size, input_size, channels), name="image")
    x = layers.ZeroPadding2D(1, name="conv1_pad")(inp)
    x = layers.Conv2D(int(STEM_CHANNELS * width), 3, strides=2, use_bias=False, name="conv1")(x)
    x = _bn("bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    for block, cin, cout, stride in BLOCKS:
        if stride == 2:
            x = layers.ZeroPadding2D(1, name=f"{block}_pad")(x)
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid", use_bias=False,
                                   name=f"{block}_conv_dw")(x)
        x = _bn(f"{block}_bn_dw")(x)
        x = layers.ReLU(name=f"{block}_relu_dw")(x)
        x = layers.Conv2D(int(cout * width), 1, use_bias=False, name=f"{block}_conv_sep")(x)
        x = _bn(f"{block}_bn_sep")(x)
        x = layers.ReLU(name=f"{block}_relu_sep")(x)
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    return keras.Model(inp, x, name=name)
