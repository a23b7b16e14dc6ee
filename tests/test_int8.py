"""The int8 exports: full-integer TFLite and static QDQ ONNX with uint8 crops in, the exact input
(the half level folded into the first convolution), the calibration faces and their refusals, what XNNPACK runs,
the runtimes reading raw crops, and a 2DASL (4-channel) model's two passes in int8.

Accuracy against Keras on AFLW2000-3D is ``test_export.py::test_runtime_parity_aflw2000`` (int8 rows); the mb05
export is conftest's ``export_dir_mb05`` (int8 calibrated on ``calibration_set``, 48 faces).
"""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tf2dasl.cli import main
from tf2dasl.data.calibration import CalibrationError, load_calibration
from tf2dasl.errors import UserError
from tf2dasl.export import export_model
from tf2dasl.export.quantize import (FOLD_TOLERANCE, MAP_INPUT_SCALE, input_quantization, int8_inputs,
                                     int8_ready_regressor, xnnpack_partition)
from tf2dasl.geometry.landmark_map import landmark_map
from tf2dasl.inference import RuntimeLoadError, load_predictor
from tf2dasl.io.model_dir import load_model_dir

NAME = "mb05_120x120"
#: ops XNNPACK may leave to LiteRT's builtin kernels in the int8 file: the uint8 → int8 input conversion only
UNDELEGATED_OK = {"QUANTIZE"}


@pytest.fixture(scope="module")
def meta(export_dir_mb05):
    return json.loads((export_dir_mb05 / "export.json").read_text())


def test_int8_tflite_is_full_integer_with_a_raw_uint8_input(meta, calibration_set):
    v = meta["artifacts"]["tflite"]["variants"]["int8"]
    assert v["file"] == f"{NAME}_int8.tflite"
    assert v["input"] == {"dtype": "uint8", "scale": 1 / 128, "zero_point": 128}  # raw pixels: x = q
    # every convolution computes in int8; the float part is the pooled feature onward
    assert v["int8_ops"]["CONV_2D"] == 14 and v["int8_ops"]["DEPTHWISE_CONV_2D"] == 13
    assert not {"CONV_2D", "DEPTHWISE_CONV_2D"} & set(v["float_ops"])
    assert {"MEAN", "FULLY_CONNECTED"} <= set(v["float_ops"])
    x = v["xnnpack"]
    assert x["partitions"] == 1 and set(x["not_delegated"]) <= UNDELEGATED_OK, x
    assert x["delegated"]["CONV_2D"] == 14 and x["delegated"]["DEPTHWISE_CONV_2D"] == 13
    # the calibration set is recorded: how many faces, from which training folders
    assert meta["calibration"]["faces"] == len(calibration_set.crops) == v["calibration"]["faces"]
    assert sum(meta["calibration"]["sources"].values()) == meta["calibration"]["faces"]
    assert all("aflw2000" not in s.lower() for s in meta["calibration"]["sources"])


def test_int8_onnx_reads_uint8_nchw_crops(meta, export_dir_mb05):
    import onnx

    v = meta["artifacts"]["onnx"]["variants"]["int8"]
    assert v["inputs"]["crops"]["dtype"] == "uint8" and v["inputs"]["crops"]["shape"] == [-1, 3, 120, 120]
    assert v["input"] == {"dtype": "uint8", "scale": 1 / 128, "zero_point": 128}
    ops = [n.op_type for n in onnx.load(str(export_dir_mb05 / v["file"])).graph.node]
    assert ops.count("Conv") == 27 and ops.count("QuantizeLinear") >= 27 and ops[0] == "DequantizeLinear"
    assert "Relu" not in ops  # folded into the quantised convolutions' ranges


def test_half_level_fold_is_exact_except_at_the_padding(mb05):
    """The int8-ready regressor on (x - 128) / 128 equals the model on (x - 127.5) / 128 wherever the first
    convolution reads no zero padding (the padded top row and left column read 128 instead of 127.5)."""
    crops = np.random.default_rng(0).integers(0, 256, (2, 120, 120, 3), np.uint8)
    spec = mb05.spec
    ready = int8_ready_regressor(mb05)

    def first_block(reg):
        return keras.Model(reg.backbone.input, reg.backbone.get_layer("bn1").output)

    want = first_block(mb05.regressor)((crops.astype(np.float32) - 127.5) / 128).numpy()
    got = first_block(ready)(int8_inputs(crops, spec)).numpy()
    assert np.abs(got - want)[:, 1:, 1:].max() < 1e-5  # interior: exact
    assert np.abs(got - want)[:, 0].max() > 1e-4  # the padded border differs: the test can tell
    whole = np.abs(ready(int8_inputs(crops, spec)).numpy()
                   - mb05.regressor((crops.astype(np.float32) - 127.5) / 128).numpy()).max()
    assert whole < FOLD_TOLERANCE
    assert input_quantization(spec) == (1 / 128, 128)


def test_int8_runtimes_read_raw_crops(export_dir_mb05):
    crops = np.random.default_rng(1).integers(0, 256, (3, 120, 120, 3), np.uint8)
    for kind in ("tflite", "onnx"):
        rt = load_predictor(kind, export_dir=export_dir_mb05, variant="int8")
        assert rt.raw_crops is True and "int8" in rt.name
        out = rt.predict(crops)
        assert out.params.shape == (3, 62) and out.landmarks.shape == (3, 68, 3)
        assert np.isfinite(out.landmarks).all()
        assert load_predictor(kind, export_dir=export_dir_mb05, variant="float32").raw_crops is False


def test_xnnpack_partition_names_what_it_leaves_out():
    """A float model with an op XNNPACK has no kernel for: the op is reported as not delegated."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def f(x):
        return tf.nn.relu(tf.cumsum(x * 2.0, axis=1)) + 1.0

    content = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert()
    got = xnnpack_partition(content)
    assert "CUMSUM" in got["not_delegated"] and got["delegated"], got


def test_calibration_faces_and_their_refusals(shared_dir, tmp_path):
    cal = load_calibration([shared_dir / "data" / "aflw_wild", shared_dir / "data" / "300w" / "afw"], 5)
    assert cal.crops.shape == (5, 120, 120, 3) and cal.crops.dtype == np.uint8
    assert list(cal.sources.values()) == [3, 2]
    again = load_calibration([shared_dir / "data" / "aflw_wild", shared_dir / "data" / "300w" / "afw"], 5)
    np.testing.assert_array_equal(cal.crops, again.crops)  # a fixed seed: reproducible exports
    with pytest.raises(CalibrationError, match="evaluation folder"):
        load_calibration([shared_dir / "data" / "aflw2000_3d_dev"], 5)
    with pytest.raises(CalibrationError, match="folder not found"):
        load_calibration([tmp_path / "nope"], 5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="holds no images"):
        load_calibration([tmp_path / "empty"], 5)


def test_int8_export_without_calibration_is_one_clear_error(mb05_dir, tmp_path, capsys):
    with pytest.raises(UserError, match="needs calibration faces: pass --calibration DIR"):
        export_model(mb05_dir, tmp_path / "e", formats="onnx", log=lambda *a: None)
    assert main(["export", str(mb05_dir), "--out", str(tmp_path / "o"), "--formats", "onnx",
                 "--calibration", str(tmp_path / "missing")]) == 2
    assert "--calibration" in capsys.readouterr().err
    assert main(["export", str(mb05_dir), "--out", str(tmp_path / "o"), "--no-int8",
                 "--calibration", str(tmp_path)]) == 2


def test_evaluate_cli_runs_the_int8_onnx(export_dir_mb05, shared_dir, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "aflw2000", "--data", str(shared_dir / "data" / "aflw2000_3d_dev"), "--runtime", "onnx",
                 "--variant", "int8", "--export-dir", str(export_dir_mb05), "--json", str(out), "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert "onnx int8" in res["model"] and np.isfinite(res["nme_2d_68"]["original"]["mean"])


@pytest.mark.slow  # exports a 4-channel model's int8 TFLite and ONNX files
def test_four_channel_model_two_passes_in_int8(model4_dir, calibration_set, aflw_dev, tmp_path):
    """A 2DASL model: the first pass's float landmarks make the map of the second, which joins the crop at half
    scale in one exact int8 tensor; both int8 files follow the Keras model's two passes. A given landmark map runs
    in float only: the int8 files say so in one line."""
    m4 = load_model_dir(model4_dir)
    meta = export_model(model4_dir, tmp_path / "e4", formats="tflite,onnx", log=lambda *a: None,
                        tflite_variants=("int8",), onnx_variants=("int8",), calibration=calibration_set)
    v = meta["artifacts"]["tflite"]["variants"]["int8"]
    assert v["int8_ops"]["CONV_2D"] == 28 and v["int8_ops"]["CONCATENATION"] == 2  # two passes, exact concats
    ready = int8_ready_regressor(m4)
    np.testing.assert_allclose(ready.backbone.get_layer("conv1").get_weights()[0][:, :, 3],
                               m4.regressor.backbone.get_layer("conv1").get_weights()[0][:, :, 3] / MAP_INPUT_SCALE)
    crops = aflw_dev.crops[:24]
    decoder = m4.decoder
    ref = decoder.landmarks(load_predictor("keras", m4).predict(crops).params)
    for kind in ("tflite", "onnx"):
        rt = load_predictor(kind, export_dir=tmp_path / "e4", variant="int8")
        got = decoder.landmarks(rt.predict(crops).params)
        err = np.linalg.norm(got[..., :2] - ref[..., :2], axis=-1).mean(axis=1)
        print(f"{kind} int8 4-channel: mean landmark distance to Keras {np.median(err):.3f} px (median face)")
        assert np.median(err) < 1.0, (kind, err)
        with pytest.raises(RuntimeLoadError, match=r"int8 file has no 'with_map' signature .*given landmarks run in "
                                                   r"float \(--variant float32"):
            rt.predict(crops[:1], landmark_map(None, 120, 1))
