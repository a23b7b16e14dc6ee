"""The teacher, seen from profiling: the one place that asks a model for parameters, and the key of its labels.

Profiling never imports TensorFlow itself: a teacher is a loaded model (``tf2dasl.load_model(MODEL_DIR)``) passed in,
and :func:`teacher_params` is the only call into it, so a new inference API is wired in here alone.
:func:`teacher_fingerprint` is the key of its labels in :class:`tf2dasl.data.teacher.TeacherCache` (the cache
training uses too: the same crops are labelled once) and part of a profiled set's key.
"""
from __future__ import annotations

import numpy as np

from ..data.teacher import fingerprint


def teacher_params(model, crops: np.ndarray) -> np.ndarray:
    """The teacher's raw parameters ``(B, 62)`` for crops ``(B, S, S, 3)`` uint8 BGR (its normal inference)."""
    return np.asarray(model.predict_params(np.ascontiguousarray(crops)), np.float32)


def teacher_fingerprint(model) -> str:
    """24 hex digits identifying a teacher's labels: its regressor weights, whitening and input spec."""
    arrays = [np.asarray(w) for w in model.regressor.get_weights()] + [model.mm.param_mean, model.mm.param_std]
    spec = {k: v for k, v in model.spec.to_dict().items() if k not in ("name", "provenance")}
    return fingerprint(arrays, {"spec": spec, "inference": "predict_params"})
