"""The parameter regressor: backbone → pooled latent feature → 62 whitened 3DMM parameters."""
from __future__ import annotations

import keras
from keras import layers

from .backbones import build_backbone


@keras.saving.register_keras_serializable(package="tf2dasl")
class Regressor(keras.Model):
    """``(B, S, S, C)`` normalised crops (BGR channels, then the landmark map if C == 4) → ``(B, 62)`` whitened params.

    ``features(x)`` gives the pooled latent feature ``(B, F)`` the self-critic looks at;
    ``call_with_features(x)`` gives both in one pass.
    """

    def __init__(self, backbone: str = "mobilenet_v1", width: float = 1.0, input_size: int = 120,
                 channels: int = 3, num_params: int = 62, **kwargs):
        super().__init__(**kwargs)
        self.backbone_name, self.width, self.input_size = backbone, float(width), int(input_size)
        self.channels, self.num_params = int(channels), int(num_params)
        self.backbone = build_backbone(backbone, width, input_size, channels)
        self.head = layers.Dense(num_params, name="fc")

    @property
    def feature_dim(self) -> int:
        return int(self.backbone.output.shape[-1])

    def call_with_features(self, x, training=None):
        feat = self.backbone(x, training=training)
        return self.head(feat), feat

    def features(self, x, training=None):
        return self.backbone(x, training=training)

    def call(self, x, training=None):
        return self.call_with_features(x, training=training)[0]

    def build(self, input_shape=None):
        if not self.built:
            self.head.build((None, self.feature_dim))
            super().build((None, self.input_size, self.input_size, self.channels))

    def get_config(self):
        return {"backbone": self.backbone_name, "width": self.width, "input_size": self.input_size,
                "channels": self.channels, "num_params": self.num_params, "name": self.name}
