"""``tf2dasl export`` and the export runtimes of ``tf2dasl.inference``: artifacts, parity with Keras on AFLW2000-3D,
a 4-channel model's two passes and landmark-map input in every artifact, TFLite op sets, the SavedModel seen from a
fresh process and ``saved_model_cli``, ``predict_image`` against the crop path.

The exports are made once per session (``export_dir_mb05``, ``export_dir_4ch`` in conftest.py).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from synthetic import random_morphable_model
from tf2dasl.errors import UserError
from tf2dasl.evaluate import ModelUnderTest, Predictions, evaluate_aflw2000, score_aflw2000
from tf2dasl.export import (RESOURCE_OPS, ExportError, LandmarkHead, ServingModule, export_model, gpu_analysis,
                            gpu_op_issues, tflite_ops)
from tf2dasl.geometry.landmark_map import landmark_map
from tf2dasl.inference import RuntimeLoadError, load_predictor
from tf2dasl.inference.keras_runtime import KerasPredictor
from tf2dasl.models.spec import ModelSpec
from tf2dasl.models.task import FaceTask

NAME = "mb05_120x120"
#: |NME - Keras NME| allowed for the int8 files of the test export: the int8 bound (0.05, docs/deployment.md) plus
#: 0.01 because the suite calibrates on conftest's 48 faces, not the export's 500 (measured here: TFLite +0.001 / +0.030, ONNX
#: +0.003 / +0.035 on the original / re-annotated ground truth; the real export's figures: docs/deployment.md)
INT8_NME_TOLERANCE = 0.06
RUNTIMES = [("savedmodel", "float32", 0.01), ("tflite", "float32", 0.01), ("tflite", "float16", 0.03),
            ("tflite", "int8", INT8_NME_TOLERANCE), ("onnx", "float32", 0.01), ("onnx", "int8", INT8_NME_TOLERANCE)]


def _sm_path(export_dir: Path) -> Path:
    return export_dir / "saved_model" / NAME / "1"


@pytest.fixture(scope="module")
def aflw(aflw_dev):
    return aflw_dev


@pytest.fixture(scope="module")
def saved_model(export_dir_mb05):
    return tf.saved_model.load(str(_sm_path(export_dir_mb05)))


@pytest.fixture(scope="module")
def keras_model(mb05):
    return mb05


@pytest.fixture(scope="module")
def keras_result(aflw, keras_model):
    m = keras_model
    return evaluate_aflw2000(aflw, ModelUnderTest(m.spec.name, KerasPredictor(m), m.decoder))


# ---------------------------------------------------------------------------- layout
def test_export_layout_and_manifest(export_dir_mb05, mb05_dir):
    d = export_dir_mb05
    for f in ["export.json", f"{NAME}_float32.tflite", f"{NAME}_float16.tflite", f"{NAME}_int8.tflite", f"{NAME}.onnx",
              f"{NAME}_int8.onnx",
              f"saved_model/{NAME}/1/saved_model.pb", f"saved_model/{NAME}/1/assets/model.json",
              f"saved_model/{NAME}/1/assets.extra/tf_serving_warmup_requests"]:
        assert (d / f).is_file(), f
    meta = json.loads((d / "export.json").read_text())
    assert meta["format"] == "tf2dasl-export" and meta["model_name"] == NAME
    assert meta["spec"]["input_size"] == 120 and meta["normalization"]["mean"] == 127.5
    assert len(meta["whitening"]["mean"]) == 62 and len(meta["whitening"]["std"]) == 62
    arts = meta["artifacts"]
    assert arts["savedmodel"]["path"] == f"saved_model/{NAME}/1"
    sig = arts["savedmodel"]["signatures"]
    assert sig["serving_default"]["inputs"]["crops"] == {"shape": [-1, 120, 120, 3], "dtype": "uint8",
                                                         "layout": "NHWC", "note": sig["serving_default"]["inputs"]["crops"]["note"]}
    assert set(sig["predict_image"]["outputs"]) >= {"landmarks_2d_image", "landmarks_3d_image", "params", "pose"}
    assert arts["tflite"]["inputs"]["crops"]["shape"] == [1, 120, 120, 3]
    assert set(arts["tflite"]["outputs"]) == {"params_whitened", "landmarks"}
    assert set(arts["tflite"]["variants"]) == {"float32", "float16", "int8"}
    assert arts["onnx"]["opset"] == 17 and set(arts["onnx"]["outputs"]) == {"params", "landmarks"}
    # the float32 ONNX model is described once, by artifacts.onnx; its variants are the other files
    assert arts["onnx"]["file"] == f"{NAME}.onnx" and set(arts["onnx"]["variants"]) == {"int8"}
    # the model directory's model.json travels as a SavedModel asset
    assert (_sm_path(d) / "assets" / "model.json").read_text() == (mb05_dir / "model.json").read_text()


def test_manifest_io_is_what_the_artifacts_declare(export_dir_mb05, saved_model):
    """export.json's inputs/outputs are read from the artifacts: they agree with the loaded SavedModel's
    signatures, LiteRT's view of the TFLite file and ONNX Runtime's view of the ONNX file."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    meta = json.loads((export_dir_mb05 / "export.json").read_text())
    arts = meta["artifacts"]

    def dims(shape):
        return [-1 if d is None or not isinstance(d, int) else d for d in shape]

    for name, desc in arts["savedmodel"]["signatures"].items():
        fn = saved_model.signatures[name]
        ins = fn.structured_input_signature[1]
        assert {k: (v["shape"], v["dtype"]) for k, v in desc["inputs"].items()} == \
            {k: (dims(s.shape.as_list()), s.dtype.name) for k, s in ins.items()}, name
        assert {k: (v["shape"], v["dtype"]) for k, v in desc["outputs"].items()} == \
            {k: (dims(t.shape.as_list()), t.dtype.name) for k, t in fn.structured_outputs.items()}, name
    runner = Interpreter(model_path=str(export_dir_mb05 / f"{NAME}_float32.tflite")).get_signature_runner()
    for got, want in ((arts["tflite"]["inputs"], runner.get_input_details()),
                      (arts["tflite"]["outputs"], runner.get_output_details())):
        assert {k: v["shape"] for k, v in got.items()} == {k: list(d["shape_signature"]) for k, d in want.items()}
    sess = ort.InferenceSession(str(export_dir_mb05 / arts["onnx"]["file"]), providers=["CPUExecutionProvider"])
    for got, want in ((arts["onnx"]["inputs"], sess.get_inputs()), (arts["onnx"]["outputs"], sess.get_outputs())):
        assert {k: v["shape"] for k, v in got.items()} == {v.name: dims(v.shape) for v in want}
    # every tensor a user sees carries its meaning, except the self-explaining whitened parameters
    for sig in arts["savedmodel"]["signatures"].values():
        for k, v in {**sig["inputs"], **sig["outputs"]}.items():
            assert k == "params_whitened" or v.get("note"), k


def test_warmup_requests_are_valid_predict_requests(export_dir_mb05):
    from tensorflow_serving.apis import prediction_log_pb2

    from serving_double import LocalModels, load_served_models

    path = _sm_path(export_dir_mb05) / "assets.extra" / "tf_serving_warmup_requests"
    models = LocalModels(load_served_models(export_dir_mb05))
    n = 0
    for rec in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(rec.numpy())
        req = log.predict_log.request
        assert req.model_spec.name == NAME and req.model_spec.signature_name == "serving_default"
        crops = tf.make_ndarray(req.inputs["crops"])
        assert crops.dtype == np.uint8 and crops.shape[1:] == (120, 120, 3)
        _, out = models.predict(NAME, None, "serving_default", {"crops": crops})
        assert out["params"].shape == (len(crops), 62)
        n += 1
    assert n >= 1


# ---------------------------------------------------------------------------- parity
@pytest.mark.parametrize("kind,variant,tol", RUNTIMES, ids=[f"{k}-{v}" for k, v, _ in RUNTIMES])
def test_runtime_parity_aflw2000(export_dir_mb05, aflw, keras_result, kind, variant, tol):
    rt = load_predictor(kind, export_dir=export_dir_mb05, variant=variant if kind == "tflite" else None)
    res = evaluate_aflw2000(aflw, ModelUnderTest(rt.name, rt))  # scored on the runtime's own landmarks
    for gt in ("original", "reannotated"):
        ours, ref = res["nme_2d_68"][gt]["mean"], keras_result["nme_2d_68"][gt]["mean"]
        print(f"{rt.name}: NME {gt} {ours:.4f} (keras {ref:.4f}, diff {ours - ref:+.4f})")
        assert abs(ours - ref) <= tol, (rt.name, gt, ours, ref)
    params = rt.predict(aflw.crops[:4]).params
    assert params.shape == (4, 62) and params.dtype == np.float32


def test_float16_landmark_head_stays_in_range(keras_model, aflw):
    """The TFLite head in float16 arithmetic (TFLite GPU delegate precision): finite and within 0.25 px."""
    m = keras_model
    head = LandmarkHead(m.mm, 120, m.spec.crop_convention)
    params = KerasPredictor(m).predict(aflw.crops[:64]).params
    pw, ref = m.mm.whiten(params), m.decoder.landmarks(params)
    h = np.float16
    w = {v.path.split("/")[-1]: np.asarray(v.numpy(), h) for v in head.weights}
    assert all(np.isfinite(a).all() for a in w.values()), "a head weight overflows float16"
    x = pw.astype(h)
    pose = (x[:, :12] * w["pose_scale"] + w["pose_shift"]).reshape(-1, 1, 12)
    shape = (w["u"][None] + x[:, 12:] @ w["basis"].T).reshape(-1, 68, 3)
    rows = [shape[..., 0:1] * pose[..., 4 * r:4 * r + 1] + shape[..., 1:2] * pose[..., 4 * r + 1:4 * r + 2]
            + shape[..., 2:3] * pose[..., 4 * r + 2:4 * r + 3] + pose[..., 4 * r + 3:4 * r + 4] for r in range(3)]
    lm = np.concatenate(rows, -1).astype(np.float32)
    lm[..., 0] -= 1.0
    lm[..., 1] = 120.0 - lm[..., 1]
    lm[..., 2] -= 1.0
    assert np.isfinite(lm).all()
    err = np.abs(lm[..., :2] - ref[..., :2]).max()
    print(f"float16 head: max landmark error {err:.3f} crop px")
    assert err < 0.25


# ---------------------------------------------------------------------------- TFLite op sets
@pytest.mark.parametrize("variant", ["float32", "float16", "int8"])
def test_tflite_builtin_ops_only_and_gpu_analyzer(export_dir_mb05, variant):
    content = (export_dir_mb05 / f"{NAME}_{variant}.tflite").read_bytes()
    ops = tflite_ops(content)
    print(variant, ops)
    assert not [o for o in ops if o.startswith(("FLEX", "CUSTOM"))], ops
    assert not set(ops) & set(RESOURCE_OPS), ops  # weights frozen
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= set(ops)
    ok, report = gpu_analysis(content)
    assert "TFLite ModelAnalyzer" in report and "looks compatible with GPU delegate" in report
    issues = gpu_op_issues(content)
    print(f"{variant}: GPU delegate compatible {ok}; offline op check: {issues[:3]}{' ...' if len(issues) > 3 else ''}")
    if variant in ("float32", "float16"):
        assert ok and not issues, report[-2000:]
        assert "GPU COMPATIBILITY WARNING" not in report.upper()
    else:  # full-integer int8: no hybrid (int8-weight, float-input) kernels
        assert not any("hybrid" in i for i in issues), issues


@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_tflite_entry_reads_one_parse_of_the_file(export_dir_mb05, calibration_set, monkeypatch, variant):
    """A TFLite file's export.json entry is made from the file parsed once (by its converter): no check parses the
    bytes again, and the entry is the one the export wrote."""
    from tensorflow.lite.python import schema_py_generated as schema

    from tf2dasl.export import mobile, parse_tflite, quantize

    file_name = f"{NAME}_{variant}.tflite"
    tfl = parse_tflite((export_dir_mb05 / file_name).read_bytes())
    parses, parse = [], schema.ModelT.InitFromPackedBuf
    monkeypatch.setattr(schema.ModelT, "InitFromPackedBuf", staticmethod(lambda *a: parses.append(a) or parse(*a)))
    entry = (quantize.int8_entry(tfl, file_name, calibration_set) if variant == "int8" else
             mobile.file_entry(file_name, tfl, mobile.QUANTIZATION[variant]))
    assert not parses
    meta = json.loads((export_dir_mb05 / "export.json").read_text())
    assert json.loads(json.dumps(entry)) == meta["artifacts"]["tflite"]["variants"][variant]
    parse_tflite(tfl.content)
    assert len(parses) == 1  # the patch sees a parse


def test_gpu_op_check_catches_unsupported_ops():
    """TF 2.21's analyzer passes anything; the offline check must not."""
    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def bad(x):
        return tf.unique(tf.reshape(x, [-1]))[0], x[:, 2:5]  # UNIQUE; a 2D strided slice

    content = tf.lite.TFLiteConverter.from_concrete_functions([bad.get_concrete_function()]).convert()
    issues = gpu_op_issues(content)
    assert any("UNIQUE" in i for i in issues) and any("2D" in i for i in issues), issues
    assert gpu_analysis(content)[0] is False


# ---------------------------------------------------------------------------- the SavedModel, from outside
FRESH_PROCESS_CODE = (
    "import json, sys, numpy as np, tensorflow as tf\n"
    "m = tf.saved_model.load(sys.argv[1])\n"
    "out = m.signatures['serving_default'](crops=tf.zeros([2, 120, 120, 3], tf.uint8))\n"
    "img = tf.io.encode_jpeg(tf.fill([200, 160, 3], tf.constant(128, tf.uint8)))\n"
    "out2 = m.signatures['predict_image'](images=tf.stack([img]), roi_boxes=tf.constant([[10., 20., 150., 160.]]))\n"
    "print(json.dumps({'sigs': sorted(m.signatures), 'a': {k: v.shape.as_list() for k, v in out.items()},\n"
    "                  'b': {k: v.shape.as_list() for k, v in out2.items()}}))\n")


@pytest.fixture(scope="module")
def outside_views(export_dir_mb05):
    """Run, side by side, a fresh Python that loads the SavedModel and ``saved_model_cli show --all``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    path = str(_sm_path(export_dir_mb05))
    cli = Path(sys.executable).parent / "saved_model_cli"
    procs = {"fresh": subprocess.Popen([sys.executable, "-c", FRESH_PROCESS_CODE, path], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env=env)}
    if cli.exists():
        procs["cli"] = subprocess.Popen([str(cli), "show", "--all", "--dir", path], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)
    out = {}
    for k, p in procs.items():
        so, se = p.communicate(timeout=300)
        out[k] = (p.returncode, so, se)
    return out


@pytest.mark.slow  # spawns a Python process
def test_savedmodel_loads_in_a_fresh_process(outside_views):
    rc, stdout, stderr = outside_views["fresh"]
    assert rc == 0, stderr[-3000:]
    got = json.loads(stdout.strip().splitlines()[-1])
    assert got["sigs"] == ["predict_image", "serving_default"]  # a 3-channel model has no with_map signature
    assert got["a"] == {"params_whitened": [2, 62], "params": [2, 62], "landmarks_2d": [2, 68, 2],
                        "landmarks_3d": [2, 68, 3], "pose": [2, 3]}
    assert got["b"]["landmarks_2d_image"] == [1, 68, 2] and got["b"]["landmarks_3d_image"] == [1, 68, 3]


@pytest.mark.slow  # spawns saved_model_cli
def test_saved_model_cli_lists_the_signatures(outside_views):
    if "cli" not in outside_views:
        pytest.skip(f"saved_model_cli not found next to {sys.executable}")
    rc, text, stderr = outside_views["cli"]
    assert rc == 0, stderr[-3000:]
    blocks = {}
    for part in text.split("signature_def['")[1:]:
        blocks[part.split("']", 1)[0]] = part
    assert {"serving_default", "predict_image"} <= set(blocks)
    sd, pi = blocks["serving_default"], blocks["predict_image"]
    assert "inputs['crops']" in sd and "DT_UINT8" in sd and "(-1, 120, 120, 3)" in sd
    for out, shape in [("params", "(-1, 62)"), ("params_whitened", "(-1, 62)"), ("landmarks_2d", "(-1, 68, 2)"),
                       ("landmarks_3d", "(-1, 68, 3)"), ("pose", "(-1, 3)")]:
        seg = sd.split(f"outputs['{out}']", 1)
        assert len(seg) == 2 and shape in seg[1].split("name:", 1)[0], (out, shape)
    assert "inputs['images']" in pi and "DT_STRING" in pi and "inputs['roi_boxes']" in pi and "(-1, 4)" in pi
    assert "outputs['landmarks_2d_image']" in pi and "outputs['landmarks_3d_image']" in pi


# ---------------------------------------------------------------------------- predict_image
def _crop_path(sm, image_bgr, roi, size=120):
    from tf2dasl.geometry.camera import crop_to_image
    from tf2dasl.geometry.roi import crop_image

    crop = crop_image(image_bgr, roi, size)[None]
    lm = sm.signatures["serving_default"](crops=tf.constant(crop))["landmarks_3d"].numpy()
    return crop_to_image(lm, np.asarray(roi, np.float32)[None], size)


def test_predict_image_matches_crop_path_on_a_photo(saved_model, shared_dir):
    from tf2dasl.geometry.roi import roi_from_landmarks
    from tf2dasl.io.pts import read_pts

    img_path = shared_dir / "data" / "images" / "einstein.jpg"
    if not img_path.is_file():
        pytest.skip(f"{img_path} not found")
    sm = saved_model
    image = cv2.imread(str(img_path))
    roi = roi_from_landmarks(read_pts(img_path.with_suffix(".pts"))[None])[0]
    ref = _crop_path(sm, image, roi)
    pi = sm.signatures["predict_image"]
    for encoded in (img_path.read_bytes(), cv2.imencode(".png", image)[1].tobytes()):
        out = pi(images=tf.constant([encoded]), roi_boxes=tf.constant(roi[None]))
        got = out["landmarks_3d_image"].numpy()
        err = np.linalg.norm(got[..., :2] - ref[..., :2], axis=-1)
        scale = (roi[2] - roi[0]) / 120
        print(f"predict_image vs crop path: mean {err.mean() / scale:.4f}, max {err.max() / scale:.4f} crop px")
        assert err.mean() / scale < 0.1 and err.max() / scale < 1.0
        np.testing.assert_allclose(out["landmarks_2d_image"].numpy(), got[..., :2])


def test_predict_image_on_aflw2000_images_matches_crop_path(saved_model, aflw, shared_dir):
    """AFLW2000 photos + protocol roi boxes through predict_image vs ``crop_image`` crops through serving_default
    (and vs the protocol's own JPEG crops, reported)."""
    from tf2dasl.geometry.roi import crop_image

    img_dir = shared_dir / "data" / "aflw2000_3d_dev" / "AFLW2000"
    paths = [img_dir / n for n in aflw.names]
    if not all(p.is_file() for p in paths):
        pytest.skip("AFLW2000 images not found")
    sd, pi = saved_model.signatures["serving_default"], saved_model.signatures["predict_image"]
    outs = []
    for i in range(0, len(paths), 50):
        outs.append(pi(images=tf.constant([p.read_bytes() for p in paths[i:i + 50]]),
                       roi_boxes=tf.constant(aflw.roi_boxes[i:i + 50]))["landmarks_3d"].numpy())
    lm_image = np.concatenate(outs)
    crops = np.stack([crop_image(cv2.imread(str(p)), r) for p, r in zip(paths, aflw.roi_boxes)])
    lm_crop = sd(crops=tf.constant(crops))["landmarks_3d"].numpy()
    lm_proto = sd(crops=tf.constant(aflw.crops))["landmarks_3d"].numpy()
    d = np.linalg.norm(lm_image[..., :2] - lm_crop[..., :2], axis=-1)
    d_proto = np.linalg.norm(lm_image[..., :2] - lm_proto[..., :2], axis=-1)
    nme = {k: score_aflw2000(aflw, Predictions(v))["nme_2d_68"]["original"]["mean"]
           for k, v in [("predict_image", lm_image), ("crop_image", lm_crop), ("protocol crops", lm_proto)]}
    print(f"predict_image vs crop_image crops: mean {d.mean():.4f} p99 {np.percentile(d, 99):.4f} max {d.max():.4f} "
          f"crop px; vs protocol crops: mean {d_proto.mean():.4f} max {d_proto.max():.3f}; NME original {nme}")
    assert d.mean() < 0.1 and d.max() < 1.0
    assert abs(nme["predict_image"] - nme["crop_image"]) < 0.01


# ---------------------------------------------------------------------------- more exports
@pytest.mark.slow  # a second SavedModel export, with the dense mesh
def test_dense_export_adds_vertices(mb05_dir, keras_model, aflw, tmp_path):
    out = tmp_path / "dense"
    meta = export_model(mb05_dir, out, version=3, formats="savedmodel", dense=True, log=lambda *a: None)
    assert meta["artifacts"]["savedmodel"]["version"] == 3 and "vertices" in \
        meta["artifacts"]["savedmodel"]["signatures"]["serving_default"]["outputs"]
    res = load_predictor("savedmodel", export_dir=out).predict(aflw.crops[:2]).outputs
    nv = keras_model.mm.num_vertices
    assert res["vertices"].shape == (2, nv, 3)
    ref = keras_model.decoder.vertices(KerasPredictor(keras_model).predict(aflw.crops[:2]).params)
    np.testing.assert_allclose(res["vertices"], ref, atol=0.05)
    # a SavedModel-only export has no TFLite/ONNX: clear errors
    with pytest.raises(RuntimeLoadError, match=r"no mb05_120x120_float16\.tflite; run `tf2dasl export"):
        load_predictor("tflite", export_dir=out, variant="float16")
    with pytest.raises(RuntimeLoadError, match=r"no ONNX model"):
        load_predictor("onnx", export_dir=out)


@pytest.mark.slow  # the 4-channel export (conftest: export_dir_4ch)
def test_four_channel_model_two_passes_and_maps_in_every_artifact(model4_dir, export_dir_4ch, aflw):
    """A 4-channel model runs its two passes inside every artifact, and every artifact takes a landmark map for one
    pass with it (``with_map``): parity with Keras, both ways, on each runtime."""
    crops = aflw.crops[:24]
    maps = landmark_map(np.random.default_rng(0).uniform(20, 100, (len(crops), 68, 2)))
    keras4 = load_predictor("keras", model4_dir)
    decoder = keras4.task.decoder
    ref, ref_map = (decoder.landmarks(keras4.predict(crops, m).params) for m in (None, maps))
    one_pass = decoder.landmarks(keras4.predict(crops, landmark_map(None, 120, len(crops))).params)
    assert np.abs(ref - one_pass).max() > 0.05 and np.abs(ref - ref_map).max() > 0.05  # the map matters
    meta = json.loads((export_dir_4ch / "export.json").read_text())
    assert meta["normalization"]["two_pass_landmark_map"] is True
    assert set(meta["artifacts"]["savedmodel"]["signatures"]) == {"serving_default", "with_map", "predict_image"}
    assert set(meta["artifacts"]["tflite"]["signatures"]) == {"serving_default", "with_map"}
    assert meta["artifacts"]["onnx"]["with_map"]["file"] == "mb05_4ch_with_map.onnx"
    v = meta["artifacts"]["tflite"]["variants"]["float32"]
    assert v["gpu_compatible"] and not v["gpu_issues"], v["gpu_issues"][:4]  # the landmark map runs on the GPU too
    for kind in ("savedmodel", "tflite", "onnx"):
        rt = load_predictor(kind, export_dir=export_dir_4ch)
        for m, want in ((None, ref), (maps, ref_map)):
            out = rt.predict(crops, m)
            err = np.abs(out.landmarks - want).max(axis=(1, 2))
            # a landmark on a pixel boundary may round differently in the map: allow one odd face
            assert np.median(err) < 0.01 and (err < 0.05).mean() >= 0.9, (kind, m is None, err)
            np.testing.assert_allclose(decoder.landmarks(out.params), out.landmarks, atol=0.01)


@pytest.mark.slow  # the 4-channel export (conftest: export_dir_4ch)
def test_a_float_file_without_with_map_is_an_older_export(export_dir_4ch, tmp_path):
    """A 4-channel export whose export.json names no ONNX with_map graph (an older tf2dasl's): given landmarks
    are refused in one line that says to export again."""
    meta = json.loads((export_dir_4ch / "export.json").read_text())
    del meta["artifacts"]["onnx"]["with_map"]
    (tmp_path / "export.json").write_text(json.dumps(meta))
    shutil.copy(export_dir_4ch / meta["artifacts"]["onnx"]["file"], tmp_path)
    rt = load_predictor("onnx", export_dir=tmp_path)
    with pytest.raises(RuntimeLoadError, match=r"no 'with_map' signature .*older tf2dasl\); run `tf2dasl export"):
        rt.predict(np.zeros((1, 120, 120, 3), np.uint8), landmark_map(None, 120, 1))


def test_missing_map_signature_names_the_float_variants():
    """The one line for an artifact without a with_map signature: an int8 file points to the runtime's float
    variants, a float one to a new export."""
    from tf2dasl.inference.export_dir import ONNX_VARIANTS, TFLITE_VARIANTS, missing_map_signature

    art, export_dir = Path("e/m_int8.tflite"), Path("e")
    msg = str(missing_map_signature(art, export_dir, "int8", TFLITE_VARIANTS))
    assert msg.startswith(f"{art}: the int8 file has no 'with_map' signature") and "\n" not in msg
    assert msg.endswith("given landmarks run in float (--variant float32 or float16)")
    assert str(missing_map_signature(art, export_dir, "int8", ONNX_VARIANTS)).endswith("(--variant float32)")
    msg = str(missing_map_signature(Path("e/m_float32.tflite"), export_dir, "float32", TFLITE_VARIANTS))
    assert "older tf2dasl" in msg and "--variant" not in msg and msg.endswith("run `tf2dasl export MODEL_DIR --out e`")


# ---------------------------------------------------------------------------- the ONNX graph, built from the weights
def _random_face_model(backbone: str, width: float, channels: int, seed: int = 0):
    """A random model of a backbone, with random BatchNorm statistics (so that folding them is exercised)."""
    rng = np.random.default_rng(seed)
    spec = ModelSpec(name=f"{backbone}_{channels}ch", backbone=backbone, width=width, channels=channels)
    task = FaceTask(spec, random_morphable_model())
    for layer in task.regressor.backbone.layers:
        if type(layer).__name__ == "BatchNormalization":
            c = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 2.0, c)])
    return task


@pytest.mark.parametrize("backbone,width,channels", [
    ("mobilenet_v2", 0.35, 3), ("mobilenet_v1", 0.25, 4),
    pytest.param("resnet50", 1.0, 3, marks=pytest.mark.slow)])  # ResNet-50: 25 M weights to build and fold
def test_onnx_graph_of_other_backbones_equals_keras(backbone, width, channels):
    """The ONNX builder translates the backbones' layers (ReLU6, residual Adds, asymmetric padding, max pooling,
    biased convolutions, BN) and a 4-channel model's two passes: its outputs equal the Keras task model's."""
    import collections

    from tf2dasl.export import convert_onnx

    m = _random_face_model(backbone, width, channels)
    proto, details = convert_onnx(m, log=lambda *a: None)
    assert details["converter"].startswith("tf2dasl direct graph") and details["layout"] == "NCHW"
    assert details["check"]["max_landmark_diff_px"] < 1e-3 and details["check"]["max_param_diff_in_std"] < 1e-5
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    assert "BatchNormalization" not in ops and "Transpose" not in ops, ops
    # zero padding sits inside the convolutions; only a max pool keeps its own Pad (it pads with -inf)
    padded = {n.output[0] for n in proto.graph.node if n.op_type == "Pad"}
    assert {n.op_type for n in proto.graph.node if set(n.input) & padded} <= {"MaxPool"}


def test_onnx_falls_back_to_tf2onnx_for_unknown_layers(monkeypatch):
    from tf2dasl.export import onnx_layers

    m = _random_face_model("mobilenet_v1", 0.25, 3)
    monkeypatch.setattr(onnx_layers, "SUPPORTED", tuple(k for k in onnx_layers.SUPPORTED if k != "DepthwiseConv2D"))
    lines = []
    from tf2dasl.export import convert_onnx

    proto, details = convert_onnx(m, log=lines.append)
    assert details["converter"].startswith("tf2onnx") and "DepthwiseConv2D" in details["converter"]
    assert details["layout"] == "NHWC" and details["check"]["max_landmark_diff_px"] < 1e-2
    assert [i.name for i in proto.graph.input] == ["crops"] and {o.name for o in proto.graph.output} == \
        {"params", "landmarks"}
    assert lines and "converting with tf2onnx instead" in lines[0]


def test_onnx_landmark_map_is_the_numpy_map():
    """The ONNX landmark map (two passes of a 4-channel model) against its numpy twin, on points inside, outside,
    on the crop's edges and on pixel boundaries (x.5 rounds up)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from tf2dasl.export.onnx_graph import landmark_map_nodes
    from tf2dasl.export.onnx_layers import GraphBuilder
    from tf2dasl.geometry.landmark_map import landmark_map

    size = 120
    rng = np.random.default_rng(3)
    pts = rng.uniform(-10, size + 10, (6, 18, 3)).astype(np.float32)
    pts[0, :6, :2] = [[0, 0], [119.49, 119.49], [119.5, 3], [-0.5, 7], [-0.51, 7], [59.5, 60.5]]
    g = GraphBuilder()
    batch = g.op("Slice", [g.op("Shape", ["points"]), g.const("z", [0], np.int64), g.const("o", [1], np.int64)])
    g.rename(landmark_map_nodes(g, "points", batch, size), "map")
    graph = helper.make_graph(g.nodes, "map",
                              [helper.make_tensor_value_info("points", TensorProto.FLOAT, ["N", 18, 3])],
                              [helper.make_tensor_value_info("map", TensorProto.FLOAT, ["N", 1, size, size])],
                              list(g.initializers.values()))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"points": pts})[0]
    # numpy's map takes 68 landmarks: place the 18 points where the pairs read them (both ends of a pair alike)
    from tf2dasl.geometry.landmark_map import MAP_POINT_PAIRS

    lm = np.zeros((len(pts), 68, 3), np.float32)
    for i, (a, b) in enumerate(MAP_POINT_PAIRS):
        lm[:, a] = lm[:, b] = pts[:, i]
    want = landmark_map(lm, size)
    np.testing.assert_array_equal(got[:, 0], want)
    assert (want == 1).sum() > 40


def test_export_argument_errors(mb05_dir, tmp_path):
    from tf2dasl.cli import main

    with pytest.raises(ExportError, match="unknown export format"):
        export_model(mb05_dir, tmp_path / "x", formats="savedmodel,pb")
    with pytest.raises(ExportError, match="positive"):
        export_model(mb05_dir, tmp_path / "x", version=0)
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert main(["export", str(mb05_dir), "--out", str(tmp_path / "o"), "--formats", "tf"]) == 2


def test_export_never_overwrites_what_is_not_an_export(mb05_dir, tmp_path):
    """A folder with the user's files, or a foreign export.json, is refused and left as it was."""
    user = tmp_path / "photos"
    user.mkdir()
    (user / "me.jpg").write_bytes(b"mine")
    with pytest.raises(ExportError, match="holds files but no export.json"):
        export_model(mb05_dir, user, formats="onnx", onnx_variants=("float32",), log=lambda *a: None)
    assert sorted(p.name for p in user.iterdir()) == ["me.jpg"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "export.json").write_text('{"mine": true}')
    with pytest.raises(ExportError, match="not overwriting it"):
        export_model(mb05_dir, other, formats="onnx", onnx_variants=("float32",), log=lambda *a: None)
    assert (other / "export.json").read_text() == '{"mine": true}' and len(list(other.iterdir())) == 1


@pytest.mark.slow  # a second ONNX export
def test_reexport_drops_a_float32_onnx_variant_copy(mb05_dir, export_dir_mb05, tmp_path):
    """An export.json that also listed NAME.onnx as a float32 variant loses that copy when the ONNX model is
    exported again into it; the int8 entry is kept and the runtime reads the float32 model from artifacts.onnx."""
    meta = json.loads((export_dir_mb05 / "export.json").read_text())
    onnx = meta["artifacts"]["onnx"]
    int8 = onnx["variants"]["int8"]
    onnx["variants"]["float32"] = {"file": onnx["file"], "bytes": onnx["bytes"]}
    out = tmp_path / "e"
    out.mkdir()
    (out / "export.json").write_text(json.dumps(meta))
    got = export_model(mb05_dir, out, formats="onnx", onnx_variants=("float32",), log=lambda *a: None)
    assert got["artifacts"]["onnx"]["variants"] == {"int8": int8}
    assert json.loads((out / "export.json").read_text())["artifacts"]["onnx"]["variants"] == {"int8": int8}
    assert load_predictor("onnx", export_dir=out).path == out / f"{NAME}.onnx"


@pytest.mark.slow
def test_a_failed_savedmodel_export_leaves_the_previous_version(mb05_dir, tmp_path, monkeypatch):
    """The version folder is built under a temporary name: a failure mid-way keeps the old one, leaves no debris."""
    from tf2dasl.export import saved_model as sm

    out = tmp_path / "e"
    export_model(mb05_dir, out, formats="savedmodel", log=lambda *a: None)
    vdir = _sm_path(out)
    before = sorted(p.relative_to(vdir) for p in vdir.rglob("*"))

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sm, "write_warmup", broken)
    with pytest.raises(UserError, match="No space left on device"):
        export_model(mb05_dir, out, formats="savedmodel", log=lambda *a: None)
    assert sorted(p.relative_to(vdir) for p in vdir.rglob("*")) == before
    assert sorted(p.name for p in vdir.parent.iterdir()) == ["1"]


def test_runtime_load_errors(tmp_path, export_dir_mb05):
    with pytest.raises(RuntimeLoadError, match="export directory not found"):
        load_predictor("onnx", export_dir=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeLoadError, match=r"no export\.json\); run `tf2dasl export"):
        load_predictor("tflite", export_dir=tmp_path / "empty")
    with pytest.raises(UserError, match="unknown runtime"):
        load_predictor("torch", export_dir=export_dir_mb05)
    with pytest.raises(UserError, match="--variant int4: --runtime tflite has variants float32, float16, int8"):
        load_predictor("tflite", export_dir=export_dir_mb05, variant="int4")
    with pytest.raises(UserError, match="--variant float16: --runtime onnx has variants float32, int8"):
        load_predictor("onnx", export_dir=export_dir_mb05, variant="float16")
    with pytest.raises(UserError, match="--variant int8 applies to --runtime tflite or onnx; --runtime savedmodel"):
        load_predictor("savedmodel", export_dir=export_dir_mb05, variant="int8")
    with pytest.raises(UserError, match="--export-dir EXPORT_DIR is required"):
        load_predictor("savedmodel")
    with pytest.raises(UserError, match="no landmark-map input"):  # a 3-channel export takes no maps
        load_predictor("onnx", export_dir=export_dir_mb05).predict(np.zeros((1, 120, 120, 3), np.uint8),
                                                                  landmark_map(None, 120, 1))


def test_evaluate_cli_with_runtime(export_dir_mb05, aflw, keras_result, tmp_path, capsys):
    from tf2dasl.cli import main

    out = tmp_path / "eval.json"
    rc = main(["evaluate", "aflw2000", "--data", aflw.source["dir"], "--runtime", "tflite", "--variant", "float16",
               "--export-dir", str(export_dir_mb05), "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["runtime"] == "tflite" and "float16" in res["model"]
    assert abs(res["nme_2d_68"]["original"]["mean"] - keras_result["nme_2d_68"]["original"]["mean"]) < 0.03
    assert "NME" in capsys.readouterr().out
    assert main(["evaluate", "aflw2000", "--data", aflw.source["dir"], "--runtime", "onnx",
                 "--export-dir", str(tmp_path / "none")]) == 2


def test_serving_module_rejects_dense_for_sparse_model(keras_model):
    from dataclasses import replace

    sparse = replace(keras_model.mm, u=None, w_shp=None, w_exp=None)
    with pytest.raises(ExportError, match="--dense"):
        ServingModule(FaceTask(keras_model.spec, sparse, regressor=keras_model.regressor), dense=True)
