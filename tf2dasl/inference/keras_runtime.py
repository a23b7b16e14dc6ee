"""The Keras runtime: a :class:`~tf2dasl.models.task.FaceTask` (a model directory, loaded) behind the predictor
contract, its graphs traced once as ``tf.function``s (an eager call is ~20x slower at batch 1)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..io.model_dir import load_model_dir
from ..models.task import FaceTask
from .base import PASSES, Prediction, Predictor, batches

#: faces per graph call: bounds memory on large batches (a call takes ~2 MB of activations per 120 px face);
#: 256 crops of mb05 took 2.5-2.8 ms a face in calls of 32 and 5.0-6.6 ms in calls of 256 on a 2-core CPU
BATCH_SIZE = 32


class KerasPredictor(Predictor):
    """``task`` run in TensorFlow. ``passes``: see :data:`PASSES` (4-channel models only)."""

    runtime = "keras"

    def __init__(self, task: FaceTask, passes: int = 2, batch_size: int = BATCH_SIZE):
        spec = task.spec
        super().__init__(spec.name, spec.input_size, spec.channels, spec.crop_convention)
        if passes not in PASSES:
            raise ValueError(f"passes must be one of {PASSES}, got {passes!r}")
        self.task, self.passes, self.batch_size = task, passes, int(batch_size)
        s = spec.input_size
        crops = tf.TensorSpec([None, s, s, 3], tf.uint8)
        self._infer = tf.function(lambda c: task.infer(task.preprocessor.normalize(c), passes=passes),
                                  input_signature=[crops])
        self._with_map = tf.function(lambda c, m: task.regress(task.preprocessor.normalize(c), m)[0],
                                     input_signature=[crops, tf.TensorSpec([None, s, s], tf.float32)])

    @classmethod
    def from_model_dir(cls, model_dir, passes: int = 2, batch_size: int = BATCH_SIZE) -> "KerasPredictor":
        """The predictor of a model directory (:func:`tf2dasl.io.model_dir.load_model_dir`)."""
        return cls(load_model_dir(model_dir), passes, batch_size)

    def _predict(self, crops, maps):
        parts = [(self._infer(tf.constant(crops[b])) if maps is None else
                  self._with_map(tf.constant(crops[b]), tf.constant(maps[b]))).numpy()
                 for b in batches(len(crops), self.batch_size)]
        return Prediction(self.task.mm.unwhiten(np.concatenate(parts)))
