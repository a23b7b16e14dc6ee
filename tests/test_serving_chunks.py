"""Large calls through ``tf2dasl.serving``'s clients: more faces than ``max_request_batch`` go out as consecutive
requests of at most that many and come back concatenated in order (every output), so the clients work against a
TF Serving server without ``enable_large_batch_splitting`` (which refuses "Task size 64 is larger than maximum
input batch size 32", tensorflow/serving#1401); and ``serving/batching_parameters.txt`` accepts large requests
while executing batches of 32."""
from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest

from tf2dasl.inference.grpc_runtime import GrpcClient
from tf2dasl.inference.rest_runtime import RestClient
from tf2dasl.inference.serving_client import DEFAULT_MAX_REQUEST_BATCH, ServingError

NAME = "mb05_120x120"
SERVER_MAX_BATCH = 32  # the batch a server without large-batch splitting refuses to exceed
N = 70  # 32 + 32 + 6


def _too_large(n: int) -> str:
    # TF Serving's message for a request over max_batch_size without enable_large_batch_splitting
    return f"Task size {n} is larger than maximum input batch size {SERVER_MAX_BATCH}"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def crops(shared_dir):
    from tf2dasl.evaluate import load_aflw2000

    d = shared_dir / "data" / "aflw2000_3d_dev"
    if not (d / "AFLW2000-3D_crop.list").is_file():
        pytest.skip(f"AFLW2000-3D dev slice not found at {d}")
    crops = load_aflw2000(d).crops[:N]
    if len(crops) < N:
        pytest.skip(f"need {N} AFLW2000-3D crops, found {len(crops)}")
    return crops


@pytest.fixture(scope="module")
def photo(shared_dir):
    from tf2dasl.geometry.roi import roi_from_landmarks
    from tf2dasl.io.pts import read_pts

    path = shared_dir / "data" / "images" / "einstein.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path.read_bytes(), roi_from_landmarks(read_pts(path.with_suffix(".pts"))[None])[0]


class _Recorder:
    """What the counting server saw and how it behaves: the batch of every Predict request, whether it refuses
    requests over SERVER_MAX_BATCH like TF Serving without large-batch splitting, and failures to inject."""

    def __init__(self):
        self.reset()

    def reset(self, refuse_large: bool = False, fail_at: dict | None = None):
        self.sizes: list[int] = []
        self.refuse_large = refuse_large
        self.fail_at = dict(fail_at or {})  # request index -> grpc.StatusCode


@pytest.fixture(scope="module")
def counting_server(served):
    """The in-process gRPC PredictionService (the test double ``serving_double.py``) wrapped to count requests."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from serving_double import make_servicer

    rec = _Recorder()

    class Counting(type(make_servicer(served))):
        def Predict(self, request, context):
            sizes = {p.tensor_shape.dim[0].size for p in request.inputs.values() if p.tensor_shape.dim}
            n = max(sizes) if sizes else 0
            index = len(rec.sizes)
            rec.sizes.append(n)
            if index in rec.fail_at:
                context.abort(rec.fail_at.pop(index), "injected failure")
            if rec.refuse_large and n > SERVER_MAX_BATCH:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, _too_large(n))
            return super().Predict(request, context)

    limit = 64 * 2**20
    gs = grpc.server(ThreadPoolExecutor(4), options=[("grpc.max_receive_message_length", limit),
                                                     ("grpc.max_send_message_length", limit)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Counting(served), gs)
    port = gs.add_insecure_port("127.0.0.1:0")
    gs.start()
    try:
        yield f"127.0.0.1:{port}", rec
    finally:
        gs.stop(0)


def _assert_same(got: dict, want: dict, rtol=1e-4, atol=1e-3):
    """Equal up to float32 noise between batch sizes: raw ``params`` are whitened params times a large std
    (shape columns reach 1e4), so each column's tolerance grows with its largest value."""
    assert set(got) == set(want)
    for k in want:
        assert got[k].shape == want[k].shape, k
        scale = np.abs(want[k]).max(axis=0, keepdims=True) if want[k].ndim else np.abs(want[k])
        excess = np.abs(got[k] - want[k]) - (atol + 1e-5 * scale + rtol * np.abs(want[k]))
        assert excess.max(initial=-1.0) <= 0, (k, np.unravel_index(excess.argmax(), excess.shape), excess.max())


# ---------------------------------------------------------------------------- gRPC, in-process server
def test_grpc_large_call_is_split_and_matches_single_face_calls(counting_server, crops, served):
    target, rec = counting_server
    with GrpcClient(target, NAME, max_request_batch=32) as c:
        rec.reset()
        singles = [c.call_signature("serving_default", crops=crops[i:i + 1]) for i in range(N)]
        assert rec.sizes == [1] * N
        rec.reset()
        out = c.call_signature("serving_default", crops=crops)
        assert rec.sizes == [32, 32, 6]  # three requests, in order
    want = {k: np.concatenate([s[k] for s in singles]) for k in singles[0]}
    assert set(out) == {"params_whitened", "params", "landmarks_2d", "landmarks_3d", "pose"}
    _assert_same(out, want)
    # and the same as one unchunked call computed without any transport
    _assert_same(out, served.predict(NAME, None, "serving_default", {"crops": crops})[1])
    # the faces differ by far more than the tolerance, so a reordered concatenation would fail
    assert np.abs(want["landmarks_3d"][:32] - want["landmarks_3d"][32:64]).max() > 1.0


def test_grpc_split_equals_one_unchunked_call(counting_server, crops):
    target, rec = counting_server
    rec.reset()
    with GrpcClient(target, NAME, max_request_batch=None) as c:
        whole = c.call_signature("serving_default", crops=crops)
    assert rec.sizes == [N]
    rec.reset()
    with GrpcClient(target, NAME) as c:  # the default: DEFAULT_MAX_REQUEST_BATCH
        assert c.max_request_batch == DEFAULT_MAX_REQUEST_BATCH == 32
        split = c.call_signature("serving_default", crops=crops)
        params = c.predict(crops).params
        lm = c.predict(crops).landmarks
    assert rec.sizes == [32, 32, 6] * 3
    _assert_same(split, whole)
    np.testing.assert_allclose(params, whole["params"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(lm, whole["landmarks_3d"], rtol=1e-5, atol=1e-3)


def test_grpc_against_a_server_without_large_batch_splitting(counting_server, crops):
    """A server with max_batch_size 32 and no splitting refuses 70 faces in one request; the client's
    requests of 32 pass."""
    target, rec = counting_server
    rec.reset(refuse_large=True)
    with pytest.raises(ServingError, match=r"INVALID_ARGUMENT\): Task size 70 is larger than maximum input"):
        GrpcClient(target, NAME, max_request_batch=None).call_signature("serving_default", crops=crops)
    rec.reset(refuse_large=True)
    out = GrpcClient(target, NAME).call_signature("serving_default", crops=crops)
    assert rec.sizes == [32, 32, 6] and out["pose"].shape == (N, 3)
    # a call within max_request_batch goes out whole, so a client set above the server's limit is refused
    rec.reset(refuse_large=True)
    with pytest.raises(ServingError, match="Task size 33"):
        GrpcClient(target, NAME, max_request_batch=33).predict(crops[:33]).params
    assert rec.sizes == [33]


def test_grpc_a_failing_chunk_is_retried_or_reported(counting_server, crops):
    target, rec = counting_server
    rec.reset()
    whole = GrpcClient(target, NAME, max_request_batch=None).call_signature("serving_default", crops=crops)
    # UNAVAILABLE on the second request: retried, the call still answers every face in order
    rec.reset(fail_at={1: grpc.StatusCode.UNAVAILABLE})
    out = GrpcClient(target, NAME, retries=1, backoff=0.01).call_signature("serving_default", crops=crops)
    assert rec.sizes == [32, 32, 32, 6]
    _assert_same(out, whole)
    # INVALID_ARGUMENT on the third: not retried, one clear error, nothing half-returned
    rec.reset(fail_at={2: grpc.StatusCode.INVALID_ARGUMENT})
    with pytest.raises(ServingError, match=r"rejected the serving_default request \(INVALID_ARGUMENT\): injected"):
        GrpcClient(target, NAME, retries=2, backoff=0.01).call_signature("serving_default", crops=crops)
    assert rec.sizes == [32, 32, 6]  # the third request was not tried again


def test_grpc_predict_images_is_split_in_order(counting_server, photo):
    encoded, roi = photo
    rois = np.array([roi + [4.0 * i, -3.0 * i, 4.0 * i, -3.0 * i] for i in range(7)], np.float32)
    target, rec = counting_server
    rec.reset()
    whole = GrpcClient(target, NAME, max_request_batch=None).predict_images([encoded] * 7, rois)
    assert rec.sizes == [7]
    rec.reset()
    out = GrpcClient(target, NAME, max_request_batch=3).predict_images([encoded] * 7, rois)
    assert rec.sizes == [3, 3, 1]
    assert {"landmarks_2d_image", "landmarks_3d_image"} <= set(out)
    _assert_same(out, whole)
    # each box moved the face within its crop: the crop landmarks follow their own box
    assert np.abs(np.diff(out["landmarks_2d"].mean(axis=1)[:, 0])).min() > 1.0


def test_grpc_mismatched_batches_are_sent_whole(counting_server, photo):
    """Inputs with different batch sizes are not split: the server names the problem."""
    encoded, roi = photo
    target, rec = counting_server
    rec.reset()
    with pytest.raises(ServingError, match="INVALID_ARGUMENT.*batch sizes"):
        GrpcClient(target, NAME, max_request_batch=2).call_signature(
            "predict_image", images=np.array([encoded] * 5, object), roi_boxes=np.tile(roi, (3, 1)).astype(np.float32))
    assert len(rec.sizes) == 1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "32", "abc"])
def test_max_request_batch_is_checked(bad):
    with pytest.raises(ServingError, match="max_request_batch must be a positive integer or None"):
        RestClient("127.0.0.1:1", NAME, max_request_batch=bad)


# ---------------------------------------------------------------------------- REST, HTTP mocked
class _FakeRest:
    """Stands in for ``urllib.request.urlopen`` against TF Serving's ``:predict``: records every POST's batch and
    answers outputs computed per face, so the right answer for any split is known."""

    def __init__(self, refuse_large=False, fail_at=None):
        self.sizes: list[int] = []
        self.refuse_large, self.fail_at = refuse_large, dict(fail_at or {})

    @staticmethod
    def outputs(crops: np.ndarray) -> dict:
        c = crops.astype(np.float32)
        return {"params": c.reshape(len(c), -1)[:, :62], "pose": c[:, 0, 0, :], "mean": c.mean(axis=(1, 2, 3))}

    def __call__(self, req, timeout=None):
        assert req.get_method() == "POST" and req.full_url.endswith(f"/v1/models/{NAME}:predict")
        body = json.loads(req.data)
        crops = np.asarray(body["inputs"]["crops"], np.uint8)
        index = len(self.sizes)
        self.sizes.append(len(crops))

        def error(code, msg):
            body = io.BytesIO(json.dumps({"error": msg}).encode())
            return urllib.error.HTTPError(req.full_url, code, "error", {}, body)

        if index in self.fail_at:
            raise error(self.fail_at.pop(index), "injected failure")
        if self.refuse_large and len(crops) > SERVER_MAX_BATCH:
            raise error(400, _too_large(len(crops)))
        payload = json.dumps({"outputs": {k: v.tolist() for k, v in self.outputs(crops).items()}}).encode()

        class Resp(io.BytesIO):
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()

        return Resp(payload)


@pytest.fixture
def small_crops():
    return np.random.default_rng(0).integers(0, 256, (N, 8, 8, 3), dtype=np.uint8)


def test_rest_large_call_is_split_without_a_server(monkeypatch, small_crops):
    fake = _FakeRest()
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    out = RestClient("http://127.0.0.1:8501", NAME, max_request_batch=32).call_signature("serving_default", crops=small_crops)
    assert fake.sizes == [32, 32, 6]
    want = _FakeRest.outputs(small_crops)
    assert set(out) == set(want)
    for k in want:
        np.testing.assert_array_equal(out[k], want[k].astype(np.float32), err_msg=k)
    # the singles and one whole request agree
    fake.sizes.clear()
    whole = RestClient("http://127.0.0.1:8501", NAME, max_request_batch=None).call_signature("serving_default", crops=small_crops)
    assert fake.sizes == [N]
    for k in want:
        np.testing.assert_array_equal(out[k], whole[k])
    fake.sizes.clear()
    assert RestClient("127.0.0.1:8501", NAME, max_request_batch=7).predict(small_crops).params.shape == (N, 62)
    assert fake.sizes == [7] * 10
    fake.sizes.clear()
    RestClient("127.0.0.1:8501", NAME).call_signature("serving_default", crops=small_crops[:32])  # exactly the limit: one request
    assert fake.sizes == [32]


def test_rest_against_a_server_without_large_batch_splitting(monkeypatch, small_crops):
    fake = _FakeRest(refuse_large=True)
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(ServingError, match=r"rejected the serving_default request \(HTTP 400\): Task size 70"):
        RestClient("127.0.0.1:8501", NAME, max_request_batch=None).call_signature("serving_default", crops=small_crops)
    fake.sizes.clear()
    out = RestClient("127.0.0.1:8501", NAME).call_signature("serving_default", crops=small_crops)
    assert fake.sizes == [32, 32, 6] and out["pose"].shape == (N, 3)


def test_rest_a_failing_chunk_is_retried_or_reported(monkeypatch, small_crops):
    fake = _FakeRest(fail_at={1: 503})
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    out = RestClient("127.0.0.1:8501", NAME, retries=1, backoff=0.01).call_signature("serving_default", crops=small_crops)
    assert fake.sizes == [32, 32, 32, 6]
    np.testing.assert_array_equal(out["mean"], _FakeRest.outputs(small_crops)["mean"])
    fake = _FakeRest(fail_at={2: 404})
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(ServingError, match="model 'mb05_120x120' not found"):
        RestClient("127.0.0.1:8501", NAME, retries=2, backoff=0.01).call_signature("serving_default", crops=small_crops)
    assert fake.sizes == [32, 32, 6]


# ---------------------------------------------------------------------------- the batching file
def _batching_parameters_class():
    """TF Serving's ``BatchingParameters`` (tensorflow_serving/servables/tensorflow/session_bundle_config.proto;
    not shipped in tensorflow-serving-api): the fields and types this repository's file may use. Text format
    matches fields by name and type, so an invented or misspelt field fails to parse."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    fdp = descriptor_pb2.FileDescriptorProto(name="tf2dasl_test/batching.proto", package="tensorflow.serving",
                                             syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    msg = fdp.message_type.add(name="BatchingParameters")
    fields = [("max_batch_size", "Int64Value"), ("batch_timeout_micros", "Int64Value"),
              ("max_enqueued_batches", "Int64Value"), ("num_batch_threads", "Int64Value"),
              ("thread_pool_name", "StringValue"), ("allowed_batch_sizes", None),
              ("pad_variable_length_inputs", None), ("enable_large_batch_splitting", "BoolValue"),
              ("max_execution_batch_size", "Int64Value")]
    for number, (name, wrapper) in enumerate(fields, 1):
        if wrapper:
            msg.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                          type_name=f".google.protobuf.{wrapper}")
        elif name == "allowed_batch_sizes":
            msg.field.add(name=name, number=number, label=F.LABEL_REPEATED, type=F.TYPE_INT64)
        else:
            msg.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def test_batching_parameters_accept_large_requests_and_execute_batches_of_32():
    from google.protobuf import text_format

    text = (Path(__file__).resolve().parents[1] / "serving" / "batching_parameters.txt").read_text()
    p = text_format.Parse(text, _batching_parameters_class()())
    assert p.enable_large_batch_splitting.value is True
    execution = p.max_execution_batch_size.value
    assert execution == DEFAULT_MAX_REQUEST_BATCH == 32  # the clients' requests are the server's batches
    assert p.max_batch_size.value >= 4 * execution  # a request of 70+ faces is accepted and split
    sizes = list(p.allowed_batch_sizes)
    # TF Serving's check with large-batch splitting: increasing, the last equals max_execution_batch_size
    assert sizes == sorted(set(sizes)) and sizes[-1] == execution <= p.max_batch_size.value
    assert p.batch_timeout_micros.value > 0 and p.num_batch_threads.value >= 1
    with pytest.raises(text_format.ParseError):  # the schema refuses a field TF Serving does not have
        text_format.Parse("max_request_batch_size { value: 32 }", _batching_parameters_class()())
