"""A Keras layer owning the morphable model's arrays as non-trainable weights.

Weights (not ``tf.constant`` attributes) so that SavedModel, tf2onnx and TFLite conversion all see them;
the maths is :mod:`tf2dasl.geometry.tf_ops`.
"""
from __future__ import annotations

import keras
import numpy as np

from ..geometry import tf_ops
from ..geometry.conventions import CropConvention, get_convention
from ..geometry.morphable_model import MorphableModel


class MorphableLayer(keras.layers.Layer):
    """Whitened params ``(B, 62)`` → raw params, landmarks, dense vertices and pose, in TF.

    ``dense=False`` keeps only the 68-point bases (a small layer for training and serving).
    """

    def __init__(self, mm: MorphableModel | None = None, input_size: int = 120, convention: str = "3ddfa_v2",
                 dense: bool = True, num_vertices: int | None = None, **kwargs):
        kwargs.pop("trainable", None)
        super().__init__(trainable=False, **kwargs)
        self.input_size = int(input_size)
        self.convention_name = convention
        self.convention: CropConvention = get_convention(convention)
        if mm is None:  # from get_config: zero arrays of the right shapes, values come with load_weights
            mm = _placeholder_model(num_vertices if dense else None)
        self.dense = bool(dense and mm.is_dense)
        self.num_vertices = mm.num_vertices if self.dense else None

        def const(name, value):
            value = np.asarray(value, np.float32)
            return self.add_weight(name=name, shape=value.shape, initializer=keras.initializers.Constant(value),
                                   trainable=False, dtype="float32")

        self.param_mean = const("param_mean", mm.param_mean)
        self.param_std = const("param_std", mm.param_std)
        self.u_base = const("u_base", mm.u_base)
        self.w_shp_base = const("w_shp_base", mm.w_shp_base)
        self.w_exp_base = const("w_exp_base", mm.w_exp_base)
        if self.dense:
            self.u = const("u", mm.u)
            self.w_shp = const("w_shp", mm.w_shp)
            self.w_exp = const("w_exp", mm.w_exp)

    def unwhiten(self, params_w):
        """``(B, 62)`` whitened → raw."""
        return tf_ops.unwhiten(params_w, self.param_mean, self.param_std)

    def whiten(self, params):
        return tf_ops.whiten(params, self.param_mean, self.param_std)

    def landmarks_model(self, params):
        """Raw params → 68 landmarks in the model frame ``(B, 68, 3)``."""
        return tf_ops.vertices(params, self.u_base, self.w_shp_base, self.w_exp_base)

    def landmarks_crop(self, params):
        """Raw params → 68 landmarks in crop pixels ``(B, 68, 3)``."""
        return tf_ops.model_to_crop(self.landmarks_model(params), self.input_size, self.convention)

    def vertices_crop(self, params):
        """Raw params → dense vertices in crop pixels ``(B, N, 3)``."""
        if not self.dense:
            raise ValueError("this MorphableLayer holds only the 68-point bases (dense=False)")
        return tf_ops.model_to_crop(tf_ops.vertices(params, self.u, self.w_shp, self.w_exp), self.input_size,
                                    self.convention)

    def pose(self, params):
        """Raw params → ``(B, 3)`` yaw, pitch, roll in degrees."""
        return tf_ops.params_to_pose(params)

    def get_config(self):
        return {"input_size": self.input_size, "convention": self.convention_name, "dense": self.dense,
                "num_vertices": self.num_vertices, "name": self.name}

    def call(self, params_w):
        params = self.unwhiten(params_w)
        return {"params": params, "landmarks": self.landmarks_crop(params), "pose": self.pose(params)}


def _placeholder_model(num_vertices: int | None) -> MorphableModel:
    z = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    dense = {} if not num_vertices else {"u": z(3 * num_vertices), "w_shp": z(3 * num_vertices, 40),
                                         "w_exp": z(3 * num_vertices, 10)}
    return MorphableModel(u_base=z(204), w_shp_base=z(204, 40), w_exp_base=z(204, 10), param_mean=z(62),
                          param_std=np.ones(62, np.float32), **dense)
