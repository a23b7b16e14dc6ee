"""The task model's pieces: CropPreprocessor (Keras) vs its numpy twin; FaceTask's two-pass inference vs the same
steps written out in numpy, through the Keras predictor and the decoder; FaceTask as a Keras-native model (config
round trip, ``keras.saving``); the model directory (format 2, format 1 still loading, every value and array shape
checked before anything is built)."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import network_input
from synthetic import random_morphable_model
from tf2dasl.geometry.landmark_map import landmark_map
from tf2dasl.inference import InputError
from tf2dasl.inference.keras_runtime import KerasPredictor
from tf2dasl.io.model_dir import load_model_dir, save_model_dir
from tf2dasl.io.model_files import MM_FILE, SPEC_FILE, ModelDirError, read_model_spec
from tf2dasl.models.preprocessor import CropPreprocessor
from tf2dasl.models.spec import ModelSpec
from tf2dasl.models.task import FaceTask

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
    empty = CropPreprocessor(SIZE, 4)(tf.constant(crops)).numpy()[..., 3]
    assert (empty == -1).all()


def _task(channels, name="t"):
    spec = ModelSpec(name=name, backbone="mobilenet_v1", width=0.25, input_size=SIZE, channels=channels)
    task = FaceTask(spec, random_morphable_model())
    head = task.regressor.head
    head.set_weights([w * 0.1 for w in head.get_weights()])  # params near the mean: a face in the crop
    return task


def test_two_pass_inference_equals_the_steps_in_numpy():
    task = _task(4)
    crops = _crops(4)
    x0 = network_input(crops, task.spec.norm_mean, task.spec.norm_scale, 4)  # empty map
    first = task.mm.unwhiten(task.regressor(x0, training=False).numpy())
    lm = task.decoder.landmarks(first)
    x1 = network_input(crops, task.spec.norm_mean, task.spec.norm_scale, 4, landmark_map(lm, SIZE))
    second = task.mm.unwhiten(task.regressor(x1, training=False).numpy())
    assert np.isfinite(lm).all() and ((lm[..., :2] > 0) & (lm[..., :2] < SIZE)).mean() > 0.5
    tol = dict(rtol=1e-4, atol=1e-3 * np.abs(second).max())
    np.testing.assert_allclose(KerasPredictor(task).predict(crops).params, second, **tol)
    np.testing.assert_allclose(KerasPredictor(task, passes=1).predict(crops).params, first, **tol)
    # the empty map given is one pass: what the reconstructor feeds the box crop
    np.testing.assert_allclose(KerasPredictor(task).predict(crops, landmark_map(None, SIZE, 4)).params, first, **tol)
    assert not np.array_equal(first, second)  # the map pathway is live: the second pass differs


def test_task_outputs_agree_with_the_predictor_and_decoder():
    task = _task(3)
    crops = _crops(2)
    out = task(tf.constant(crops))
    predictor = KerasPredictor(task)
    params = predictor.predict(crops).params
    np.testing.assert_allclose(out["params"].numpy(), params, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(out["landmarks"].numpy(), task.decoder.landmarks(params), atol=1e-2)
    np.testing.assert_allclose(out["pose"].numpy(), task.decoder.pose(params), atol=1e-3)
    assert predictor.predict(crops[:0]).params.shape == (0, 62)
    with pytest.raises(InputError, match="no landmark-map input"):
        predictor.predict(crops, landmark_map(None, SIZE, 2))
    with pytest.raises(InputError, match="uint8"):
        predictor.predict(crops.astype(np.float32))


def test_face_task_is_keras_native(tmp_path):
    task = _task(4, "native")
    config = task.get_config()
    assert config["spec"] == task.spec.to_dict()
    again = FaceTask.from_config(json.loads(json.dumps(config)))  # the config is plain JSON
    assert again.spec == task.spec and again.name == "native"
    path = tmp_path / "task.keras"
    task.save(path)
    loaded = keras.saving.load_model(path)
    crops = _crops(2)
    np.testing.assert_allclose(loaded(tf.constant(crops))["params"].numpy(), task(tf.constant(crops))["params"].numpy(),
                               rtol=1e-5)
    # the numpy morphable model comes back from the layer's weights (68-point decoding)
    np.testing.assert_allclose(loaded.mm.u_base, task.mm.u_base)


def test_model_directory_round_trip_and_format_1(tmp_path):
    task = _task(4, "round")
    task.provenance = {"source": "test"}
    d = save_model_dir(task, tmp_path / "m")
    meta = json.loads((d / SPEC_FILE).read_text())
    assert meta["format_version"] == 2 and meta["task"]["config"]["spec"]["name"] == "round"
    assert meta["provenance"]["source"] == "test" and "spec" not in meta  # one description of the model
    loaded = load_model_dir(d)
    crops = _crops(2)
    np.testing.assert_array_equal(KerasPredictor(loaded).predict(crops).params, KerasPredictor(task).predict(crops).params)
    assert loaded.provenance == {"source": "test"}
    # format 1: a flat spec that held the provenance
    v1 = {"format": "tf2dasl-model", "format_version": 1, "spec": {**task.spec.to_dict(), "provenance": {"a": 1}},
          "morphable_model": {"source": {"from": "v1"}}}
    (d / SPEC_FILE).write_text(json.dumps(v1))
    old = load_model_dir(d)
    assert old.spec == task.spec and old.provenance == {"a": 1} and old.mm.source == {"from": "v1"}


def test_model_directory_values_and_arrays_are_checked_before_building(tmp_path):
    d = save_model_dir(_task(3, "checked"), tmp_path / "m")
    meta = json.loads((d / SPEC_FILE).read_text())
    for key, value, needle in (("width", 1000, "width must be a number in"), ("input_size", 100000, "input_size"),
                               ("name", "a/b", "name must be"), ("channels", 5, "channels")):
        bad = json.loads(json.dumps(meta))
        bad["task"]["config"]["spec"][key] = value
        (d / SPEC_FILE).write_text(json.dumps(bad))
        with pytest.raises(ModelDirError, match=needle):
            read_model_spec(d)
    (d / SPEC_FILE).write_text(json.dumps(meta))
    arrays = dict(np.load(d / MM_FILE))
    # a header that claims a huge array is refused from its header, before anything is read
    with open(d / MM_FILE, "wb") as f:
        np.savez(f, **{**arrays, "w_shp": np.lib.format.open_memmap(tmp_path / "big.npy", "w+", np.float32, (8, 40))})
    with pytest.raises(ModelDirError, match="w_shp has shape"):
        load_model_dir(d)
    np.savez(d / MM_FILE, **{k: v for k, v in arrays.items() if k != "param_std"})
    with pytest.raises(ModelDirError, match="missing array"):
        load_model_dir(d)
    np.savez(d / MM_FILE, **arrays, extra=np.zeros(3))
    with pytest.raises(ModelDirError, match="unknown array"):
        load_model_dir(d)
