"""``MorphableLayer``: the morphable model as a Keras layer — the TensorFlow twin of
:class:`tf2dasl.geometry.decoder.Decoder` (whitening, raw parameters → model frame → crop → image pixels, pose).

Its arrays are non-trainable weights (not ``tf.constant`` attributes) so that SavedModel, tf2onnx and TFLite
conversion all see them; the maths is :mod:`tf2dasl.geometry.tf_ops`. Geometry stays float32 under a
``mixed_float16`` policy.
"""
from __future__ import annotations

import keras
import numpy as np

from ..geometry import tf_ops
from ..geometry.conventions import get_convention
from ..geometry.morphable_model import NUM_EXP, NUM_LANDMARKS, NUM_PARAMS, NUM_SHAPE, MorphableModel

#: the arrays of the layer: the whitening, the sparse (``num_points``) bases and, when dense, the dense ones
SPARSE_ARRAYS = ("param_mean", "param_std", "u_base", "w_shp_base", "w_exp_base")
DENSE_ARRAYS = ("u", "w_shp", "w_exp")


def _shapes(num_points: int, num_vertices: int | None) -> dict:
    n = 3 * num_points
    shapes = {"param_mean": (NUM_PARAMS,), "param_std": (NUM_PARAMS,), "u_base": (n,), "w_shp_base": (n, NUM_SHAPE),
              "w_exp_base": (n, NUM_EXP)}
    if num_vertices:
        shapes.update(u=(3 * num_vertices,), w_shp=(3 * num_vertices, NUM_SHAPE), w_exp=(3 * num_vertices, NUM_EXP))
    return shapes


@keras.saving.register_keras_serializable(package="tf2dasl")
class MorphableLayer(keras.layers.Layer):
    """Whitened params ``(B, 62)`` → raw params, points in crop or image pixels and pose, in TF.

    ``mm``: a :class:`MorphableModel` whose sparse bases give ``num_points`` points (the 68 landmarks, or any model
    points, e.g. a training run's point layout); None: zero arrays of the configured shapes, filled by
    :meth:`set_morphable_model` (``from_config``). ``dense=False`` keeps only the sparse bases (a small layer for
    training and serving); ``dense=True`` also the mesh's (:meth:`vertices`).
    """

    def __init__(self, mm: MorphableModel | None = None, input_size: int = 120, convention: str = "3ddfa_v2",
                 dense: bool = False, num_points: int | None = None, num_vertices: int | None = None, **kwargs):
        kwargs.pop("trainable", None)
        kwargs.setdefault("dtype", "float32")
        super().__init__(trainable=False, **kwargs)
        self.input_size = int(input_size)
        self.convention_name = convention
        self.convention = get_convention(convention)
        if mm is not None:
            dense = bool(dense and mm.is_dense)
            num_points, num_vertices = len(mm.u_base) // 3, mm.num_vertices if dense else None
        self.dense, self.num_points = bool(dense), int(num_points or NUM_LANDMARKS)
        self.num_vertices = int(num_vertices) if self.dense and num_vertices else None
        if self.dense and not self.num_vertices:
            raise ValueError("a dense MorphableLayer needs a dense morphable model or num_vertices")
        for name, shape in _shapes(self.num_points, self.num_vertices).items():
            setattr(self, name, self.add_weight(name=name, shape=shape, trainable=False, dtype="float32",
                                                initializer="ones" if name == "param_std" else "zeros"))
        if mm is not None:
            self.set_morphable_model(mm)
        self.built = True  # its weights are made here: no input shape needed
    def set_morphable_model(self, mm: MorphableModel) -> None:
        """Assign the arrays of ``mm`` (same number of points; dense arrays when the layer is dense)."""
        for name, shape in _shapes(self.num_points, self.num_vertices).items():
            value = np.asarray(getattr(mm, name), np.float32)
            if value.shape != shape:
                raise ValueError(f"morphable model array {name} has shape {value.shape}, the layer holds {shape}")
            getattr(self, name).assign(value)

    # ------------------------------------------------------------------ the decode
    def unwhiten(self, params_w):
        """``(B, 62)`` whitened → raw."""
        return tf_ops.unwhiten(params_w, self.param_mean, self.param_std)

    def whiten(self, params):
        """``(B, 62)`` raw → whitened."""
        return tf_ops.whiten(params, self.param_mean, self.param_std)

    def model_points(self, params, dense: bool = False):
        """Raw params ``(B, 62)`` → the ``num_points`` points (``dense``: every vertex) in the model frame."""
        if dense:
            if not self.dense:
                raise ValueError("this MorphableLayer holds only the sparse bases (dense=False)")
            return tf_ops.vertices(params, self.u, self.w_shp, self.w_exp)
        return tf_ops.vertices(params, self.u_base, self.w_shp_base, self.w_exp_base)

    def _frame(self, points, roi_boxes):
        crop = tf_ops.model_to_crop(points, self.input_size, self.convention)
        return crop if roi_boxes is None else tf_ops.crop_to_image(crop, roi_boxes, self.input_size)

    def landmarks(self, params, roi_boxes=None):
        """Raw params → the points ``(B, num_points, 3)``: crop pixels, or image pixels through ``roi_boxes (B, 4)``."""
        return self._frame(self.model_points(params), roi_boxes)

    def vertices(self, params, roi_boxes=None):
        """Raw params → the dense mesh ``(B, V, 3)`` in crop pixels, or image pixels through ``roi_boxes (B, 4)``."""
        return self._frame(self.model_points(params, dense=True), roi_boxes)

    def pose(self, params):
        """Raw params → ``(B, 3)`` yaw, pitch, roll in degrees."""
        return tf_ops.params_to_pose(params)

    def call(self, params_w):
        params = self.unwhiten(params_w)
        return {"params": params, "landmarks": self.landmarks(params), "pose": self.pose(params)}

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size, "convention": self.convention_name,
                "dense": self.dense, "num_points": self.num_points, "num_vertices": self.num_vertices}
