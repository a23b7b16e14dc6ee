"""tf2dasl: 2DASL 3D face reconstruction and dense face alignment in TensorFlow/Keras."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"


def load_model(model_dir):
    """Load a model directory (see ``tf2dasl.io.model_dir``) into a :class:`tf2dasl.model.FaceModel`."""
    from .io.model_dir import load_model_dir

    return load_model_dir(model_dir)
