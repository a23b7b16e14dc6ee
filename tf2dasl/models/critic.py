"""2DASL's self-critic: judges whether an (image latent feature, parameters) pair is real or predicted."""
from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="tf2dasl")
class SelfCritic(keras.Model):
    """``(z (B, F), params_w (B, 62))`` → realness logit ``(B, 1)``.

    The latent feature is projected to ``hidden[0]`` units and the whitened parameters to the same, then an
    MLP (LeakyReLU) over their concatenation scores the pair. ``param_slice`` picks which parameters it
    sees (2DASL's first critic saw only the 10 expression coefficients: ``(52, 62)``). It always computes in
    float32, also under a ``mixed_float16`` policy: its optimizer is not loss-scaled and its logit joins the
    float32 loss terms.
    """

    def __init__(self, hidden=(512, 256), param_slice=(0, 62), feature_dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.param_slice = tuple(int(h) for h in hidden), tuple(int(i) for i in param_slice)
        self.feature_dropout = float(feature_dropout)
        f32 = {"dtype": "float32"}
        self.z_proj = layers.Dense(self.hidden[0], name="z_proj", **f32)
        self.p_proj = layers.Dense(self.hidden[0], name="p_proj", **f32)
        self.drop = layers.Dropout(self.feature_dropout, **f32)
        self.mlp = [layers.Dense(h, name=f"fc{i}", **f32) for i, h in enumerate(self.hidden[1:])]
        self.out = layers.Dense(1, name="logit", **f32)

    def call(self, inputs, training=None):
        z, p = (keras.ops.cast(t, "float32") for t in inputs)
        a, b = self.param_slice
        h = self.z_proj(self.drop(z, training=training)) + self.p_proj(p[:, a:b])
        h = keras.activations.leaky_relu(h, 0.2)
        for layer in self.mlp:
            h = keras.activations.leaky_relu(layer(h), 0.2)
        return self.out(h)

    def get_config(self):
        return {"hidden": list(self.hidden), "param_slice": list(self.param_slice),
                "feature_dropout": self.feature_dropout, "name": self.name}
