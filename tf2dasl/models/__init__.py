"""Keras models, the keras-hub way: backbones, the regressor (backbone + head), the crop preprocessor, the
task model and the 2DASL training model.

Owns :mod:`.spec` (``ModelSpec``: what a model is, checked; no TensorFlow), :mod:`.backbones` / :mod:`.mobilenet_v1`
(feature extractors), :mod:`.regressor` (backbone + 62-parameter
head), :mod:`.preprocessor` (``CropPreprocessor``: normalisation and the landmark-map channel), :mod:`.morphable`
(the morphable model as a Keras layer of non-trainable weights), :mod:`.task` (``FaceTask``: preprocessing +
regressor + decoding + two-pass inference), :mod:`.critic` (2DASL's self-critic) and :mod:`.dasl` (``DASLModel``,
the custom ``train_step``). Must not do file I/O or import :mod:`tf2dasl.io`, :mod:`tf2dasl.data`,
:mod:`tf2dasl.training`, :mod:`tf2dasl.commands` or the pipeline above it; depends only on :mod:`tf2dasl.geometry`,
:mod:`tf2dasl.losses` and Keras/TensorFlow.
"""
