"""The teacher, seen from profiling: the model whose fits are profiled, as its decoder (morphable model, crop side and
convention), a predictor and the key of its labels.

Profiling never imports TensorFlow itself: :meth:`Teacher.from_model` takes a loaded model
(:func:`tf2dasl.api.load_model`) and runs it through the one predictor contract (:mod:`tf2dasl.inference`, which
imports the Keras runtime only when asked for); :meth:`Teacher.params` is the only call into it.
:func:`teacher_fingerprint` is the key of its labels in :class:`tf2dasl.data.teacher.TeacherCache` (the cache
training uses too: the same crops are labelled once) and part of a profiled set's key.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.teacher import fingerprint
from ..geometry.decoder import Decoder
from ..inference import Predictor, load_predictor

#: the inference a teacher's labels come from, as their key names it (the Keras model's two-pass parameters; the
#: name is the key's since labels were first cached, so caches made before stay valid)
INFERENCE = "predict_params"


def teacher_fingerprint(model) -> str:
    """24 hex digits identifying a loaded model's labels: its regressor weights, whitening and input spec."""
    arrays = [np.asarray(w) for w in model.regressor.get_weights()] + [model.mm.param_mean, model.mm.param_std]
    spec = {k: v for k, v in model.spec.to_dict().items() if k not in ("name", "provenance")}
    return fingerprint(arrays, {"spec": spec, "inference": INFERENCE})


@dataclass(frozen=True, eq=False)
class Teacher:
    """``decoder``: the teacher's morphable model, crop side and convention (its fits are rendered with them);
    ``predictor``: crops → raw parameters (:class:`tf2dasl.inference.Predictor`); ``fingerprint``: the key of its
    labels (:func:`teacher_fingerprint`)."""

    decoder: Decoder
    predictor: Predictor
    fingerprint: str

    @classmethod
    def from_model(cls, model) -> "Teacher":
        """The teacher of a loaded model (a :class:`~tf2dasl.models.task.FaceTask`), run by the Keras runtime with
        its normal inference (two passes for a 4-channel model)."""
        return cls(model.decoder, load_predictor("keras", model=model), teacher_fingerprint(model))

    def params(self, crops: np.ndarray) -> np.ndarray:
        """The teacher's raw parameters ``(B, 62)`` for crops ``(B, S, S, 3)`` uint8 BGR."""
        return np.asarray(self.predictor.predict(np.ascontiguousarray(crops)).params, np.float32)
