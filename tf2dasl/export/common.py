"""What every export module shares: the export's error and the two pieces of ``tf.Module`` plumbing that make
Keras 3 layers save as plain SavedModel graphs (:func:`hold`, :func:`tf_variables_of`)."""
from __future__ import annotations

import tensorflow as tf

from ..errors import UserError


class ExportError(UserError):
    """An export cannot be written (bad arguments, an output path in the way, an unsupported model)."""


def hold(module: tf.Module, **layers) -> None:
    """Give ``module`` Keras layers as plain attributes that a SavedModel does not record as objects.

    The SavedModel keeps the signatures' graphs and the variables (:func:`tf_variables_of`); recording the
    Keras objects themselves adds ~1000 object-graph nodes that ``tf.saved_model.load`` revives one by one
    (5 s per load instead of ~1 s) and that no consumer (TF Serving, converters, ``load``) needs.
    """
    for name, layer in layers.items():
        module.__dict__[name] = layer  # bypasses AutoTrackable.__setattr__: not a SavedModel dependency


def tf_variables_of(*layers) -> list:
    """The ``tf.Variable``s behind Keras layers' weights, for a ``tf.Module`` to track.

    A SavedModel that reaches Keras 3 weights only through the Keras objects records them as generic
    trackables; TFLite's converter then cannot freeze them and keeps ``VAR_HANDLE``/``READ_VARIABLE`` ops (an
    empty, unusable model). Tracking the underlying ``tf.Variable``s (as Keras' own ``ExportArchive`` does)
    makes them ordinary SavedModel variables that every converter freezes.
    """
    return [w.value for layer in layers for w in layer.weights]
