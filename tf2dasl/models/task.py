"""``FaceTask``: the task model — crops in, 3DMM parameters, landmarks and pose out (keras-hub's task).

It owns the pieces every consumer shares: the :class:`~tf2dasl.models.preprocessor.CropPreprocessor`, the
:class:`~tf2dasl.models.regressor.Regressor` (backbone + head), the morphable-model decoding
(:class:`~tf2dasl.models.morphable.MorphableLayer`) and 2DASL's two-pass inference. ``FaceModel`` (numpy API),
``DASLModel`` (training), the SavedModel and mobile export modules call it; none re-implements a step.

Two-pass inference (a 4-channel model, DESIGN.md): the first pass sees the empty landmark map, the second the
map of the first pass's own 68 landmarks. A 3-channel model, given maps, or ``passes=1`` run one pass.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from ..geometry.landmark_map import tf_landmark_map
from .morphable import MorphableLayer
from .preprocessor import CropPreprocessor
from .regressor import Regressor


class FaceTask(keras.Model):
    """uint8 crops ``(B, S, S, 3)`` [+ maps ``(B, S, S)``] → ``{"params_whitened" (B, 62), "params" (B, 62) raw,
    "landmarks" (B, 68, 3) crop pixels, "pose" (B, 3) yaw/pitch/roll degrees}``.

    ``landmark_head`` (optional): a layer mapping whitened params to crop-pixel landmarks ``(B, 68, 3)`` for the
    second pass's map and the ``landmarks`` output (the mobile export passes its float16-safe head); default:
    the morphable layer's own decoding.
    """

    def __init__(self, preprocessor: CropPreprocessor, regressor: Regressor, morphable: MorphableLayer,
                 landmark_head: keras.layers.Layer | None = None, **kwargs):
        super().__init__(**kwargs)
        if preprocessor.channels != regressor.channels or preprocessor.input_size != regressor.input_size:
            raise ValueError(f"preprocessor ({preprocessor.input_size}px, {preprocessor.channels} channels) does not "
                             f"match the regressor ({regressor.input_size}px, {regressor.channels} channels)")
        self.preprocessor, self.regressor, self.morphable = preprocessor, regressor, morphable
        self.landmark_head = landmark_head

    def build(self, input_shape=None):
        self.regressor.build()  # the morphable layer and preprocessor hold no unbuilt state
        self.built = True

    @property
    def channels(self) -> int:
        return self.regressor.channels

    @property
    def input_size(self) -> int:
        return self.regressor.input_size

    # ------------------------------------------------------------------ the steps
    def regress(self, x, maps=None, training=False):
        """One pass: normalised crops ``(B, S, S, 3)`` [+ maps ``(B, S, S)``, None: empty] → whitened params
        ``(B, 62)`` float32 and the latent feature ``(B, F)`` float32 (the self-critic's input)."""
        p_w, z = self.regressor.call_with_features(self.preprocessor.with_map(x, maps), training=training)
        return tf.cast(p_w, tf.float32), tf.cast(z, tf.float32)

    def landmarks(self, params_w):
        """Whitened params ``(B, 62)`` → 68 landmarks in crop pixels ``(B, 68, 3)``."""
        if self.landmark_head is not None:
            return self.landmark_head(params_w)
        return self.morphable.landmarks_crop(self.morphable.unwhiten(params_w))

    def infer(self, x, maps=None, passes: int = 2, training=False):
        """Normalised crops ``(B, S, S, 3)`` → whitened params ``(B, 62)``: two passes for a 4-channel model (empty
        map, then the map of its own landmarks) unless ``maps`` are given or ``passes == 1``."""
        params_w, _ = self.regress(x, maps, training)
        if self.channels == 4 and maps is None and passes > 1:
            params_w, _ = self.regress(x, tf_landmark_map(self.landmarks(params_w), self.input_size), training)
        return params_w

    def decode(self, params_w) -> dict:
        """Whitened params ``(B, 62)`` → the task's outputs (see the class docstring)."""
        params = self.morphable.unwhiten(params_w)
        return {"params_whitened": params_w, "params": params, "landmarks": self.landmarks(params_w),
                "pose": self.morphable.pose(params)}

    def call(self, crops, maps=None, passes: int = 2, training=False):
        return self.decode(self.infer(self.preprocessor.normalize(crops), maps, passes, training))
