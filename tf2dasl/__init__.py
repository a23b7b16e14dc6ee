"""tf2dasl: 2DASL 3D face reconstruction and dense face alignment in TensorFlow/Keras.

The Python API is :mod:`tf2dasl.api` (``load_model``, ``load_predictor``, ``make_reconstructor``, ...); importing
this package imports nothing else, so that the numpy parts (reconstructor, batch runs, video, exported runtimes) run
without TensorFlow.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
