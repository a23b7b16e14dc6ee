"""The task model's pieces: CropPreprocessor (Keras) vs its numpy twin, FaceTask's two-pass inference vs the
same steps written out in numpy, and FaceModel's numpy API on top of it."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf2dasl.geometry.camera import model_to_crop
from tf2dasl.geometry.landmark_map import landmark_map
from tf2dasl.model import FaceModel, ModelSpec
from tf2dasl.models.preprocessor import CropPreprocessor
from tf2dasl.preprocessing import network_input, normalize_crops

from synthetic import random_morphable_model

SIZE = 120  # the synthetic morphable model places its face in a 120-px crop


def _crops(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def test_preprocessor_matches_numpy_twin():
    crops = _crops()
    maps = landmark_map(np.random.default_rng(1).uniform(0, SIZE, (3, 68, 2)), SIZE)
    for channels in (3, 4):
        pre = CropPreprocessor(SIZE, channels, 127.5, 1 / 128)
        for m in (None, maps):
            got = pre(tf.constant(crops), None if m is None else tf.constant(m)).numpy()
            want = network_input(crops, 127.5, 1 / 128, channels, m)
            assert got.shape == (3, SIZE, SIZE, channels)
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(normalize_crops(crops, 127.5, 1 / 128),
                                  CropPreprocessor(SIZE, 3).normalize(tf.constant(crops)).numpy())
    empty = CropPreprocessor(SIZE, 4)(tf.constant(crops)).numpy()[..., 3]
    assert (empty == -1).all()


def _model(channels):
    mm = random_morphable_model()
    spec = ModelSpec(name="t", backbone="mobilenet_v1", width=0.25, input_size=SIZE, channels=channels)
    reg = spec.build_regressor()
    reg.head.set_weights([w * 0.1 for w in reg.head.get_weights()])  # params near the mean: a face in the crop
    return FaceModel(spec, reg, mm)


def test_two_pass_inference_equals_the_steps_in_numpy():
    fm = _model(4)
    crops = _crops(4)
    reg = fm.regressor
    x0 = network_input(crops, fm.spec.norm_mean, fm.spec.norm_scale, 4)  # empty map
    first = fm.mm.unwhiten(reg(x0, training=False).numpy())
    lm = model_to_crop(fm.mm.landmarks(first), SIZE, fm.convention)
    x1 = network_input(crops, fm.spec.norm_mean, fm.spec.norm_scale, 4, landmark_map(lm, SIZE))
    second = fm.mm.unwhiten(reg(x1, training=False).numpy())
    assert np.isfinite(lm).all() and ((lm[..., :2] > 0) & (lm[..., :2] < SIZE)).mean() > 0.5
    np.testing.assert_allclose(fm.predict_params(crops), second, rtol=1e-4, atol=1e-3 * np.abs(second).max())
    np.testing.assert_allclose(fm.predict_params(crops, passes=1), first, rtol=1e-4, atol=1e-3 * np.abs(first).max())
    assert not np.array_equal(first, second)  # the map pathway is live: the second pass differs


def test_task_outputs_agree_with_face_model_numpy_api():
    fm = _model(3)
    crops = _crops(2)
    out = fm.task(tf.constant(crops))
    params = fm.predict_params(crops)
    np.testing.assert_allclose(out["params"].numpy(), params, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(out["landmarks"].numpy(), fm.landmarks_crop(params), atol=1e-2)
    np.testing.assert_allclose(out["pose"].numpy(), fm.pose(params), atol=1e-3)
    assert fm.predict_params(crops[:0]).shape == (0, 62)
