"""Serving: the in-process gRPC ``PredictionService`` and REST ``:predict`` (the test double ``serving_double.py``)
backed by the exported SavedModel, called through ``tf2dasl.serving.GrpcClient`` / ``RestClient``: single, batched
and concurrent requests, images, metadata, and every error a user can meet (malformed request, unknown model or
signature, oversized message, dead server, timeout). No timed asserts: retries and backoff are counted, a slow
server is one that waits for an event."""
from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import grpc
import numpy as np
import pytest
import tensorflow as tf

from tf2dasl.inference.grpc_runtime import GrpcClient
from tf2dasl.inference.rest_runtime import RestClient
from tf2dasl.inference.serving_client import ServingError
from serving_double import load_served_models, serve

NAME = "mb05_120x120"
MAX_MB = 4  # the test server's message limit




@pytest.fixture(scope="module")
def server(served):
    srv = serve(port=0, rest_port=0, models=served, max_message_mb=MAX_MB)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def crops(shared_dir):
    from tf2dasl.evaluate import load_aflw2000

    d = shared_dir / "data" / "aflw2000_3d_dev"
    if not (d / "AFLW2000-3D_crop.list").is_file():
        pytest.skip(f"AFLW2000-3D dev slice not found at {d}")
    return load_aflw2000(d).crops[:32]


@pytest.fixture(scope="module")
def direct(served, crops):
    """serving_default outputs computed without any transport."""
    return served.predict(NAME, None, "serving_default", {"crops": crops})[1]


@pytest.fixture(scope="module")
def photo(shared_dir):
    from tf2dasl.geometry.roi import roi_from_landmarks
    from tf2dasl.io.pts import read_pts

    path = shared_dir / "data" / "images" / "einstein.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    roi = roi_from_landmarks(read_pts(path.with_suffix(".pts"))[None])[0]
    return path.read_bytes(), roi, cv2.imread(str(path))


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def backoffs(monkeypatch):
    """The clients' waits between tries, recorded instead of slept (the serving client's ``time.sleep``)."""
    import types

    from tf2dasl.inference import serving_client

    waits = []
    monkeypatch.setattr(serving_client, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


def _crop_path_image_landmarks(served, image, roi):
    from tf2dasl.geometry.camera import crop_to_image
    from tf2dasl.geometry.roi import crop_image

    lm = served.predict(NAME, None, "serving_default", {"crops": crop_image(image, roi)[None]})[1]["landmarks_3d"]
    return crop_to_image(lm, roi[None], 120)


# ---------------------------------------------------------------------------- gRPC
def test_grpc_single_and_batched(server, crops, direct):
    with GrpcClient(server.target, NAME) as c:
        pred = c.predict(crops[0])  # a single (S, S, 3) crop is a batch of 1
        assert set(pred.outputs) == {"params_whitened", "landmarks_2d", "landmarks", "pose"}
        one = {"params": pred.params, "landmarks_3d": pred.landmarks, **pred.outputs}
        assert one["landmarks_3d"].shape == (1, 68, 3) and one["pose"].shape == (1, 3)
        np.testing.assert_allclose(one["landmarks_3d"][0], direct["landmarks_3d"][0], atol=1e-3)
        many = c.call_signature("serving_default", crops=crops)
        for k, v in direct.items():
            np.testing.assert_allclose(many[k], v, rtol=1e-5, atol=1e-3)


def test_grpc_client_is_a_predictor_like_a_local_model(server, crops, mb05):
    from tf2dasl.inference.keras_runtime import KerasPredictor

    with GrpcClient(server.target, NAME) as c:
        out = c.predict(crops[:8])
        assert out.params.shape == (8, 62) and out.params.dtype == np.float32
        assert set(out.outputs) >= {"landmarks", "landmarks_2d", "pose", "params_whitened"}
        assert c.predict(crops[:0]).params.shape == (0, 62)  # nothing to send: nothing sent
    ref = KerasPredictor(mb05).predict(crops[:8]).params
    np.testing.assert_allclose(mb05.decoder.landmarks(out.params), mb05.decoder.landmarks(ref), atol=1e-2)
    np.testing.assert_allclose(out.landmarks, mb05.decoder.landmarks(ref), atol=1e-2)


def test_grpc_concurrent_requests(server, crops, direct):
    def work(i):
        with GrpcClient(server.target, NAME) as c:
            idx = [(i + k) % len(crops) for k in range(1 + i % 4)]
            out = c.call_signature("serving_default", crops=crops[idx])
            return np.abs(out["landmarks_3d"] - direct["landmarks_3d"][idx]).max()

    with ThreadPoolExecutor(8) as pool:
        errs = list(pool.map(work, range(24)))
    assert max(errs) < 1e-3


def test_grpc_predict_images(server, served, photo):
    encoded, roi, image = photo
    ref = _crop_path_image_landmarks(served, image, roi)
    with GrpcClient(server.target, NAME) as c:
        out = c.predict_images([encoded, encoded], [roi, roi])
    assert out["landmarks_2d_image"].shape == (2, 68, 2) and out["landmarks_3d_image"].shape == (2, 68, 3)
    err = np.linalg.norm(out["landmarks_2d_image"][0] - ref[0, :, :2], axis=-1)
    assert err.mean() < 0.1 * (roi[2] - roi[0]) / 120, err.mean()


def test_grpc_metadata(server):
    with GrpcClient(server.target, NAME) as c:
        meta = c.metadata()
    assert set(meta) == {"serving_default", "predict_image"}
    assert meta["serving_default"]["inputs"] == {"crops": ("uint8", [-1, 120, 120, 3])}
    assert meta["predict_image"]["inputs"] == {"images": ("string", [-1]), "roi_boxes": ("float32", [-1, 4])}
    assert meta["serving_default"]["outputs"]["landmarks_3d"] == ("float32", [-1, 68, 3])


@pytest.mark.parametrize("inputs,match", [
    ({"crops": np.zeros((1, 120, 120, 3), np.float32)}, "INVALID_ARGUMENT.*must be uint8"),
    ({"crops": np.zeros((1, 60, 120, 3), np.uint8)}, "INVALID_ARGUMENT.*shape"),
    ({"crops": np.zeros((1, 120, 120, 3), np.uint8), "extra": np.zeros(1)}, "INVALID_ARGUMENT.*unexpected \\['extra'\\]"),
    ({}, "INVALID_ARGUMENT.*missing \\['crops'\\]"),
], ids=["dtype", "shape", "extra-input", "no-input"])
def test_grpc_malformed_request(server, inputs, match):
    with GrpcClient(server.target, NAME) as c:
        with pytest.raises(ServingError, match=match):
            c.call_signature("serving_default", inputs)


def test_grpc_bad_image_and_mismatched_batch(server, photo):
    encoded, roi, _ = photo
    with GrpcClient(server.target, NAME) as c:
        with pytest.raises(ServingError, match="INVALID_ARGUMENT.*Unknown image file format"):
            c.predict_images([b"not an image"], [roi])
        with pytest.raises(ServingError, match="INVALID_ARGUMENT.*batch sizes"):
            c.call_signature("predict_image", images=np.array([encoded], object),
                             roi_boxes=np.zeros((2, 4), np.float32))
    with pytest.raises(ServingError, match="2 images but 1 roi boxes"):
        GrpcClient(server.target, NAME).predict_images([encoded, encoded], [roi])


def test_grpc_status_codes(server, crops):
    """The servicer answers with TF Serving's codes (seen raw, without the client's translation)."""
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(server.target) as ch:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
        cases = [("nope", "serving_default", crops[:1], grpc.StatusCode.NOT_FOUND),
                 (NAME, "nope", crops[:1], grpc.StatusCode.NOT_FOUND),
                 (NAME, "serving_default", crops[:1].astype(np.int32), grpc.StatusCode.INVALID_ARGUMENT)]
        for name, sig, x, code in cases:
            req = predict_pb2.PredictRequest()
            req.model_spec.name, req.model_spec.signature_name = name, sig
            req.inputs["crops"].CopyFrom(tf.make_tensor_proto(x))
            with pytest.raises(grpc.RpcError) as exc:
                stub.Predict(req, timeout=10)
            assert exc.value.code() == code, (name, sig, exc.value.details())
        req = predict_pb2.PredictRequest()
        req.model_spec.name = NAME
        req.model_spec.version.value = 7
        req.inputs["crops"].CopyFrom(tf.make_tensor_proto(crops[:1]))
        with pytest.raises(grpc.RpcError) as exc:
            stub.Predict(req, timeout=10)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        # output_filter and the default signature
        req = predict_pb2.PredictRequest()
        req.model_spec.name = NAME
        req.inputs["crops"].CopyFrom(tf.make_tensor_proto(crops[:2]))
        req.output_filter.append("pose")
        resp = stub.Predict(req, timeout=10)
        assert list(resp.outputs) == ["pose"] and resp.model_spec.version.value == 1


def test_grpc_unknown_model_and_signature(server, crops):
    with pytest.raises(ServingError, match="model 'nope' not found on the server"):
        GrpcClient(server.target, "nope").call_signature("serving_default", crops=crops[:1])
    with pytest.raises(ServingError, match="model 'mb05_120x120' version 9 not found"):
        GrpcClient(server.target, NAME, version=9).call_signature("serving_default", crops=crops[:1])
    with pytest.raises(ServingError, match="signature 'nosig' not found for model"):
        GrpcClient(server.target, NAME).call_signature("nosig", crops=crops[:1])


def test_grpc_oversized_request(server, photo):
    _, roi, _ = photo
    big = np.random.default_rng(0).bytes(int(1.5 * MAX_MB * 2**20))
    # caught by the client before sending: nothing listens at that port, yet the error is the size
    with GrpcClient(f"127.0.0.1:{_free_port()}", NAME, max_message_mb=1, retries=0) as c:
        with pytest.raises(ServingError, match=r"request too large: .* MB > the 1 MB limit"):
            c.predict_images([big], [roi])
    # refused by the server (its limit is MAX_MB): RESOURCE_EXHAUSTED, not retried
    with GrpcClient(server.target, NAME, max_message_mb=64) as c:
        with pytest.raises(ServingError, match="request too large: the server .* refused it"):
            c.predict_images([big], [roi])


def test_grpc_dead_server_fails_with_bounded_retries(crops, backoffs):
    """UNAVAILABLE is retried ``retries`` times with exponential backoff (waits counted, not timed), then one line."""
    port = _free_port()
    with pytest.raises(ServingError, match=rf"cannot reach TF Serving at 127\.0\.0\.1:{port} \(UNAVAILABLE\) "
                                           r"after 3 tries; is the server running\?"):
        GrpcClient(f"127.0.0.1:{port}", NAME, retries=2, backoff=0.05, timeout=2).call_signature("serving_default", crops=crops[:1])
    assert backoffs == [0.05, 0.1]
    backoffs.clear()
    with pytest.raises(ServingError, match="after 1 try;"):
        GrpcClient(f"127.0.0.1:{port}", NAME, retries=0).call_signature("serving_default", crops=crops[:1])
    assert backoffs == []


def test_grpc_deadline_is_retried_then_reported(served, crops, backoffs):
    """A server that does not answer before the client's timeout (it waits for an event the test sets only
    afterwards): DEADLINE_EXCEEDED on every try, then one clear error; released, the same server answers."""
    import grpc as _grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from serving_double import make_servicer

    release = threading.Event()

    class Held(type(make_servicer(served))):
        def Predict(self, request, context):
            release.wait()
            return super().Predict(request, context)

    gs = _grpc.server(ThreadPoolExecutor(4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Held(served), gs)
    port = gs.add_insecure_port("127.0.0.1:0")
    gs.start()
    try:
        with pytest.raises(ServingError, match=r"did not answer within 0\.1 s \(DEADLINE_EXCEEDED\) after 2 tries"):
            GrpcClient(f"127.0.0.1:{port}", NAME, timeout=0.1, retries=1, backoff=0.01).call_signature("serving_default", crops=crops[:1])
        assert backoffs == [0.01]  # one retry, after the configured backoff
        release.set()
        assert GrpcClient(f"127.0.0.1:{port}", NAME, timeout=60).predict(crops[:1]).params.shape == (1, 62)
    finally:
        release.set()
        gs.stop(0)


# ---------------------------------------------------------------------------- REST
def test_rest_crops_images_and_status(server, served, crops, direct, photo):
    encoded, roi, image = photo
    with RestClient(server.url, NAME) as c:
        out = c.call_signature("serving_default", crops=crops[:4])
        for k in direct:
            np.testing.assert_allclose(out[k], direct[k][:4], rtol=1e-5, atol=1e-3)
        assert c.predict(crops[:2]).params.shape == (2, 62)
        img = c.predict_images([encoded], [roi])
        ref = _crop_path_image_landmarks(served, image, roi)
        assert np.abs(img["landmarks_2d_image"][0] - ref[0, :, :2]).max() < 1.0
        assert c.status()["model_version_status"][0]["state"] == "AVAILABLE"
        sigs = c.metadata()["metadata"]["signature_def"]["signature_def"]
        assert {"serving_default", "predict_image"} <= set(sigs)
    with RestClient(server.url, NAME, version=1) as c:  # /versions/1:predict
        assert c.call_signature("serving_default", crops=crops[:1])["params"].shape == (1, 62)


def test_rest_concurrent_requests(server, crops, direct):
    def work(i):
        out = RestClient(server.url, NAME).call_signature("serving_default", crops=crops[i:i + 2])
        return np.abs(out["landmarks_3d"] - direct["landmarks_3d"][i:i + 2]).max()

    with ThreadPoolExecutor(6) as pool:
        assert max(pool.map(work, range(12))) < 1e-3


def test_rest_errors(server, crops, photo, backoffs):
    _, roi, _ = photo
    with pytest.raises(ServingError, match="model 'nope' not found on the server"):
        RestClient(server.url, "nope").call_signature("serving_default", crops=crops[:1])
    with pytest.raises(ServingError, match="signature 'nosig' not found"):
        RestClient(server.url, NAME).call_signature("nosig", crops=crops[:1])
    with pytest.raises(ServingError, match=r"rejected the serving_default request \(HTTP 400\).*shape"):
        RestClient(server.url, NAME).call_signature("serving_default", crops=crops[:1, :60])
    big = np.random.default_rng(1).bytes(int(0.8 * MAX_MB * 2**20))  # base64 makes it > MAX_MB
    with pytest.raises(ServingError, match=r"request too large: the server .* refused it \(HTTP 413"):
        RestClient(server.url, NAME).predict_images([big], [roi])
    with pytest.raises(ServingError, match=r"request too large: .* > the 1 MB limit"):
        RestClient(server.url, NAME, max_message_mb=1).predict_images([big], [roi])
    port = _free_port()
    backoffs.clear()
    with pytest.raises(ServingError, match=rf"cannot reach TF Serving REST API at http://127\.0\.0\.1:{port} .* "
                                           r"after 3 tries; is the server running\?"):
        RestClient(f"127.0.0.1:{port}", NAME, backoff=0.05).call_signature("serving_default", crops=crops[:1])
    assert backoffs == [0.05, 0.1]  # the default 2 retries, exponential backoff


def test_rest_raw_json_protocol(server, crops):
    """The wire format TF Serving documents: columnar "inputs", row "instances", b64 strings, {"error"}."""
    import json
    import urllib.error
    import urllib.request

    def post(body, path=f"/v1/models/{NAME}:predict"):
        req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, out = post({"signature_name": "serving_default", "inputs": {"crops": crops[:1].tolist()}})
    assert status == 200 and np.asarray(out["outputs"]["params"]).shape == (1, 62)
    status, out = post({"instances": crops[:2].tolist()})
    assert status == 200 and len(out["predictions"]) == 2 and len(out["predictions"][0]["params"]) == 62
    status, out = post({"inputs": {"crops": crops[:1].tolist()}}, f"/v1/models/{NAME}/versions/5:predict")
    assert status == 404 and "error" in out
    status, out = post({"signature_name": "predict_image", "inputs": {"images": [{"b64": "!!"}],
                                                                        "roi_boxes": [[0, 0, 10, 10]]}})
    assert status == 400 and "base64" in out["error"]


def test_serving_double_reports_a_missing_export(tmp_path):
    from tf2dasl.errors import UserError

    with pytest.raises(UserError, match="no SavedModel found"):
        load_served_models(tmp_path / "nothing")


def test_serving_deployment_files_agree_with_the_export(export_dir_mb05):
    """serving/models.config parses as TF Serving's ModelServerConfig and names the exported model;
    docker-compose.yml passes the flags serving/README.md promises."""
    import json
    from pathlib import Path

    import yaml
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    root = Path(__file__).resolve().parents[1] / "serving"
    cfg = text_format.Parse((root / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    name = json.loads((export_dir_mb05 / "export.json").read_text())["model_name"]
    [model] = cfg.model_config_list.config
    assert model.name == name and model.base_path == f"/models/{name}" and model.model_platform == "tensorflow"
    keys = {ln.split()[0] for ln in (root / "batching_parameters.txt").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")}
    assert keys <= {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                    "allowed_batch_sizes:", "pad_variable_length_inputs:", "enable_large_batch_splitting",
                    "max_execution_batch_size"}, keys
    svc = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]["tf2dasl-serving"]
    assert "tensorflow/serving" in svc["image"] and {"8500:8500", "8501:8501"} <= set(svc["ports"])
    flags = set(svc["command"])
    assert {"--enable_batching=true", "--model_config_file=/config/models.config",
            "--enable_model_warmup=true", "--port=8500", "--rest_api_port=8501"} <= flags
    assert any(v.endswith(":/models:ro") for v in svc["volumes"])


def test_reconstruct_through_runtimes_and_server(mb05_dir, export_dir_mb05, shared_dir, tmp_path):
    """`tf2dasl reconstruct --runtime onnx|tflite` and `--server HOST:PORT` give the Keras path's landmarks."""
    import json

    from tf2dasl.cli import main
    from serving_double import serve

    photo = str(shared_dir / "data/images/trump_hillary.jpg")
    common = [photo, "--model", str(mb05_dir), "--assets", str(shared_dir / "assets")]

    def landmarks(out):
        faces = json.loads((out / "trump_hillary.json").read_text())["faces"]
        return np.array([f["landmarks_2d"] for f in sorted(faces, key=lambda f: f["bbox"][0])])

    assert main(["reconstruct", *common, "--out", str(tmp_path / "keras")]) == 0
    ref = landmarks(tmp_path / "keras")
    assert ref.shape == (2, 68, 2)
    for runtime in ("onnx", "tflite"):
        out = tmp_path / runtime
        assert main(["reconstruct", *common, "--runtime", runtime, "--export-dir", str(export_dir_mb05),
                     "--out", str(out)]) == 0
        assert np.abs(landmarks(out) - ref).max() < 0.5, runtime
    with serve(export_dir_mb05, port=0) as server:
        out = tmp_path / "served"
        assert main(["reconstruct", *common, "--server", server.target, "--out", str(out)]) == 0
        assert np.abs(landmarks(out) - ref).max() < 0.5


@pytest.mark.slow  # the 4-channel export (conftest: export_dir_4ch)
def test_pts_landmark_maps_reach_every_runtime_and_the_server(model4_dir, export_dir_4ch, shared_dir, tmp_path):
    """`tf2dasl reconstruct --pts` on a 4-channel model: the .pts landmarks' map is fed on every runtime — Keras,
    SavedModel, TFLite, ONNX, TF Serving over gRPC and REST — and all give the Keras path's landmarks."""
    import json
    import shutil

    from serving_double import serve
    from tf2dasl.cli import main
    from tf2dasl.geometry.landmark_map import landmark_map
    from tf2dasl.inference.keras_runtime import KerasPredictor
    from tf2dasl.io.model_dir import load_model_dir

    folder = tmp_path / "photo"
    folder.mkdir()
    for ext in (".jpg", ".pts"):
        shutil.copy(shared_dir / "data/images" / f"einstein{ext}", folder)
    common = [str(folder), "--model", str(model4_dir), "--pts"]

    def landmarks(out):
        return np.array(json.loads((out / "einstein.json").read_text())["faces"][0]["landmarks_2d"])

    assert main(["reconstruct", *common, "--out", str(tmp_path / "keras")]) == 0
    ref = landmarks(tmp_path / "keras")
    # the map reaches the model: without it (the model's own two passes) the landmarks differ
    task = load_model_dir(model4_dir)
    crops = np.random.default_rng(0).integers(0, 256, (2, 120, 120, 3), np.uint8)
    maps = landmark_map(np.random.default_rng(1).uniform(20, 100, (2, 68, 2)))
    keras = KerasPredictor(task)
    assert np.abs(keras.predict(crops, maps).params - keras.predict(crops).params).max() > 1e-3
    for runtime in ("savedmodel", "onnx", "tflite"):
        out = tmp_path / runtime
        assert main(["reconstruct", *common, "--runtime", runtime, "--export-dir", str(export_dir_4ch),
                     "--out", str(out)]) == 0
        assert np.abs(landmarks(out) - ref).max() < 0.05, runtime
    with serve(export_dir_4ch, port=0, rest_port=0) as server:
        out = tmp_path / "served"
        assert main(["reconstruct", *common, "--server", server.target, "--out", str(out)]) == 0
        assert np.abs(landmarks(out) - ref).max() < 0.05
        for client in (GrpcClient(server.target, "mb05_4ch", channels=4),
                       RestClient(server.url, "mb05_4ch", channels=4)):
            with client:
                np.testing.assert_allclose(client.predict(crops, maps).params, keras.predict(crops, maps).params,
                                           rtol=1e-4, atol=1e-3)
