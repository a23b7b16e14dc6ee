"""``CropPreprocessor``: the one Keras piece that turns crops into a regressor's input (keras-hub's preprocessor).

uint8 crops ``(B, S, S, 3)`` in the model's colour order → ``(B, S, S, C)`` float32: ``(x - norm_mean) *
norm_scale``, then, for a 4-channel (2DASL) model, the landmark map as the 4th channel (an empty map, all -1,
when none is given). Its numpy twin is :mod:`tf2dasl.preprocessing`. The task model, the training model,
the SavedModel and the mobile export all call this layer; nothing else normalises crops in TensorFlow.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from ..geometry.landmark_map import BACKGROUND


@keras.saving.register_keras_serializable(package="tf2dasl")
class CropPreprocessor(keras.layers.Layer):
    """Crops ``(B, S, S, 3)`` (any dtype, 0..255) [+ maps ``(B, S, S)``] → regressor input ``(B, S, S, channels)``.

    ``normalize(crops)`` gives the 3 normalised colour channels, ``with_map(x, maps)`` appends the map channel
    (``maps=None``: the empty map) — the two halves of ``call``, for callers that feed several maps to one crop.
    """

    def __init__(self, input_size: int = 120, channels: int = 3, norm_mean: float = 127.5,
                 norm_scale: float = 1.0 / 128.0, color_order: str = "BGR", **kwargs):
        kwargs.pop("trainable", None)
        super().__init__(trainable=False, **kwargs)
        self.input_size, self.channels = int(input_size), int(channels)
        self.norm_mean, self.norm_scale, self.color_order = float(norm_mean), float(norm_scale), str(color_order)

    @classmethod
    def from_spec(cls, spec, **kwargs) -> "CropPreprocessor":
        """From a :class:`tf2dasl.model.ModelSpec` (or anything with the same fields)."""
        return cls(spec.input_size, spec.channels, spec.norm_mean, spec.norm_scale, spec.color_order, **kwargs)

    def normalize(self, crops):
        """``(B, S, S, 3)`` 0..255 → float32 ``(x - norm_mean) * norm_scale``."""
        return (tf.cast(crops, tf.float32) - self.norm_mean) * self.norm_scale

    def empty_map(self, x):
        """The empty landmark map ``(B, S, S)`` (all -1) for the batch of ``x`` ``(B, S, S, ...)``."""
        return tf.fill(tf.shape(x)[:3], tf.constant(BACKGROUND, x.dtype))

    def with_map(self, x, maps=None):
        """Normalised crops ``(B, S, S, 3)`` → the regressor input: unchanged for a 3-channel model, else with the
        landmark map ``maps (B, S, S)`` (None: empty) as the 4th channel."""
        if self.channels == 3:
            return x
        maps = self.empty_map(x) if maps is None else tf.cast(maps, x.dtype)
        return tf.concat([x, maps[..., None]], axis=-1)

    def call(self, crops, maps=None):
        return self.with_map(self.normalize(crops), maps)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.channels,)

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size, "channels": self.channels,
                "norm_mean": self.norm_mean, "norm_scale": self.norm_scale, "color_order": self.color_order}
