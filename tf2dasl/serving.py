"""Clients for a model served by TF Serving (``tf2dasl export`` → ``serving/docker-compose.yml``).

Both clients speak the export's two signatures and return numpy dicts:

* ``predict_crops(crops uint8 (B, S, S, 3) BGR)`` → ``serving_default``'s outputs: ``params_whitened``
  ``(B, 62)``, ``params`` ``(B, 62)``, ``landmarks_2d`` ``(B, 68, 2)``, ``landmarks_3d`` ``(B, 68, 3)`` (crop
  pixels), ``pose`` ``(B, 3)`` degrees (+ ``vertices`` for a ``--dense`` export);
* ``predict_images(encoded: list[bytes], roi_boxes (B, 4))`` → ``predict_image``'s outputs: the same plus
  ``landmarks_2d_image`` / ``landmarks_3d_image`` in image pixels;
* ``predict_params(crops)`` → raw params ``(B, 62)`` and ``landmarks_crop(crops)`` → ``(B, 68, 3)``: a served
  model stands in for a local one (``FaceModel.predict_params``, ``tf2dasl.runtimes.Runtime``).

A call with more than ``max_request_batch`` faces (default :data:`DEFAULT_MAX_REQUEST_BATCH` = 32, the
execution batch of ``serving/batching_parameters.txt``) is sent as consecutive requests of at most that many,
and their outputs are concatenated in order: a TF Serving server whose ``max_batch_size`` is smaller than a
call (without ``enable_large_batch_splitting``) would otherwise refuse it ("Task size N is larger than
maximum input batch size"). ``max_request_batch=None`` sends every call as one request.

Inputs are checked before anything is sent (a path instead of encoded bytes, no images, roi boxes that are
not finite, under one pixel or outside their image when the header tells its size, crops of the wrong dtype
or shape): one-line :class:`ServingError` errors. The exported model checks the same in its graph and answers
``INVALID_ARGUMENT`` naming the input (``tf2dasl.export.saved_model.check_image_inputs``).

Transient failures (gRPC ``UNAVAILABLE`` / ``DEADLINE_EXCEEDED``; REST connection errors, timeouts, HTTP
503/504) are retried ``retries`` times with exponential backoff; everything else fails at once with a
:class:`ServingError` (a :class:`~tf2dasl.errors.UserError`) of one line.

Example::

    from tf2dasl.serving import GrpcClient
    with GrpcClient("127.0.0.1:8500", "mb05_120x120") as client:
        out = client.predict_images([open("face.jpg", "rb").read()], [[x0, y0, x1, y1]])
        out["landmarks_2d_image"]   # (1, 68, 2) image pixels

Over tf2dasl's ~400-line guide on purpose: one job (calling a served model), with the gRPC and REST clients
sharing one base (input checks, request splitting, retries, outputs joined in order) that each transport
completes in ~100 lines; apart, the two would drift in what they check and retry.
"""
from __future__ import annotations

import base64
import json
import numbers
import os
import socket
import time
import urllib.error
import urllib.request

import numpy as np

from .errors import UserError

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF_S = 0.1
DEFAULT_MAX_MESSAGE_MB = 64.0
# The most faces one request carries; a call with more is split into consecutive requests. Equal to
# max_execution_batch_size (and the last allowed_batch_sizes entry) in serving/batching_parameters.txt, and
# never above a server's max_batch_size, so it also works against a server without large-batch splitting.
DEFAULT_MAX_REQUEST_BATCH = 32


class ServingError(UserError):
    """A served model cannot be reached or refused a request (one line naming the server and the fix)."""


def _as_crops(crops) -> np.ndarray:
    """``crops`` as a uint8 ``(B, S, S, 3)`` array (one ``(S, S, 3)`` crop becomes a batch of one), or a
    :class:`ServingError` of one line naming what is wrong before anything is sent."""
    if isinstance(crops, (str, bytes, bytearray, os.PathLike)):
        raise ServingError(f"crops must be a uint8 array (B, S, S, 3), got a {type(crops).__name__}; read and crop "
                           "the images first, or send encoded images with predict_images")
    try:
        crops = np.asarray(crops)
    except (TypeError, ValueError) as exc:
        raise ServingError(f"crops must be a uint8 array (B, S, S, 3): {exc}") from None
    if crops.ndim == 3:
        crops = crops[None]
    if crops.dtype != np.uint8:
        raise ServingError(f"crops must be uint8 (B, S, S, 3), got {crops.dtype}")
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2]:
        raise ServingError(f"crops must have shape (B, S, S, 3), got {crops.shape}")
    if len(crops) == 0:
        raise ServingError("crops is empty: send at least one crop")
    return crops


def _as_images(encoded, roi_boxes) -> tuple[np.ndarray, np.ndarray]:
    """Encoded images and their roi boxes as the ``predict_image`` request's arrays; a :class:`ServingError` of
    one line (naming the input and the image's index) for anything the server would refuse or answer with
    meaningless landmarks: a path instead of bytes, no images, a box per image missing, a box that is not
    finite, under one pixel or (when the image's header gives its size) outside its image."""
    if isinstance(encoded, (bytes, bytearray, memoryview)):
        encoded = [encoded]
    elif isinstance(encoded, (str, os.PathLike)):
        raise ServingError(f"images must be encoded image bytes, not the path {str(encoded)!r}: send "
                           "open(path, 'rb').read()")
    try:
        encoded = list(encoded)
    except TypeError:
        raise ServingError(f"images must be a list of encoded image bytes, got {type(encoded).__name__}") from None
    for i, e in enumerate(encoded):
        if isinstance(e, (str, os.PathLike)):
            raise ServingError(f"images[{i}] must be encoded image bytes, not the path {str(e)!r}: send "
                               "open(path, 'rb').read()")
        if not isinstance(e, (bytes, bytearray, memoryview)):
            raise ServingError(f"images[{i}] must be encoded image bytes, got {type(e).__name__}")
    if not encoded:
        raise ServingError("images is empty: send at least one encoded image")
    images = np.array([bytes(e) for e in encoded], dtype=object)
    try:
        rois = np.asarray(roi_boxes, np.float32)
        rois = rois.reshape(-1, 4) if rois.size % 4 == 0 else None
    except (TypeError, ValueError):
        rois = None
    if rois is None:
        raise ServingError(f"roi_boxes must be (N, 4) numbers [x0, y0, x1, y1], got {roi_boxes!r:.80}")
    if len(rois) != len(images):
        raise ServingError(f"{len(images)} images but {len(rois)} roi boxes (one (x0, y0, x1, y1) box per image)")
    for i, box in enumerate(rois):
        why = _roi_problem(box, images[i])
        if why:
            raise ServingError(f"roi_boxes[{i}] {box.tolist()} {why}")
    return images, rois


def _roi_problem(box: np.ndarray, encoded: bytes) -> str | None:
    """Why one roi box cannot crop its encoded image (checked as ``predict_image``'s graph checks it), or None."""
    if not np.all(np.isfinite(box)):
        return "is not finite"
    x0, y0, x1, y1 = np.round(box)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return "needs x0 < x1 and y0 < y1, at least one whole pixel apart"
    from .io.images import read_header

    header = read_header(encoded)
    if header is not None:
        w, h = header.width, header.height  # the server decodes the pixels as stored (no EXIF rotation)
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            return f"lies outside its {w}x{h} image"
    return None


def _batch_size(inputs: dict) -> int | None:
    """The common leading dimension of all inputs, or None (no inputs, a scalar, or sizes that differ: such
    a request is sent whole and the server reports what is wrong with it)."""
    sizes = set()
    for v in inputs.values():
        shape = np.shape(v)
        if not shape:
            return None
        sizes.add(shape[0])
    return sizes.pop() if len(sizes) == 1 else None


class _ClientBase:
    def __init__(self, model_name: str, signature: str, timeout: float, retries: int, backoff: float,
                 max_message_mb: float, version: int | None,
                 max_request_batch: int | None = DEFAULT_MAX_REQUEST_BATCH):
        self.model_name, self.signature = model_name, signature
        self.timeout, self.retries, self.backoff = float(timeout), max(0, int(retries)), float(backoff)
        self.max_message_mb, self.version = float(max_message_mb), version
        if max_request_batch is not None:
            if isinstance(max_request_batch, bool) or not isinstance(max_request_batch, numbers.Integral) \
                    or max_request_batch < 1:
                raise ServingError(f"max_request_batch must be a positive integer or None, got {max_request_batch!r}")
            max_request_batch = int(max_request_batch)
        self.max_request_batch = max_request_batch

    # -- what subclasses implement: one request, one response
    def _predict_one(self, inputs: dict, signature: str) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, inputs: dict, signature: str | None = None) -> dict:
        """Raw predict: ``{input name: numpy}`` → ``{output name: numpy}`` on ``signature`` (default: the
        client's). Inputs whose common batch is larger than ``max_request_batch`` go out as consecutive
        requests of at most that many rows; every output is concatenated along axis 0, in order."""
        signature = signature or self.signature
        n, step = _batch_size(inputs), self.max_request_batch
        if step is None or n is None or n <= step:
            return self._predict_one(inputs, signature)
        parts = []
        for start in range(0, n, step):
            chunk = {k: v[start:start + step] for k, v in inputs.items()}
            out = self._predict_one(chunk, signature)
            rows = min(step, n - start)
            for k, v in out.items():
                if np.ndim(v) == 0 or np.shape(v)[0] != rows:
                    raise ServingError(f"cannot split a {signature} call of {n} into requests of "
                                       f"{step}: output '{k}' has shape {np.shape(v)}, not {rows} rows; "
                                       "pass max_request_batch=None to send it whole")
            if parts and set(out) != set(parts[0]):
                raise ServingError(f"the {signature} requests of one call answered with different outputs: "
                                   f"{sorted(parts[0])} then {sorted(out)}")
            parts.append(out)
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}

    # -- the shared API
    def predict_crops(self, crops) -> dict:
        """uint8 crops ``(B, S, S, 3)`` (model colour order, BGR) → ``serving_default`` outputs (numpy)."""
        return self.predict({"crops": _as_crops(crops)}, "serving_default")

    def predict_images(self, encoded, roi_boxes) -> dict:
        """Encoded images (list of JPEG/PNG bytes) and roi boxes ``(B, 4)`` → ``predict_image`` outputs."""
        images, rois = _as_images(encoded, roi_boxes)
        return self.predict({"images": images, "roi_boxes": rois}, "predict_image")

    def predict_params(self, crops) -> np.ndarray:
        """uint8 crops ``(B, S, S, 3)`` → raw params ``(B, 62)``."""
        return self.predict_crops(crops)["params"]

    def landmarks_crop(self, crops) -> np.ndarray:
        """uint8 crops ``(B, S, S, 3)`` → 68 landmarks in crop pixels ``(B, 68, 3)``."""
        return self.predict_crops(crops)["landmarks_3d"]

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.backoff * (2 ** attempt))

    def _too_large(self, nbytes: int, where: str) -> ServingError:
        return ServingError(f"request too large: {nbytes / 2**20:.1f} MB > the {self.max_message_mb:g} MB limit "
                            f"({where}); send fewer or smaller images per request, or raise max_message_mb on "
                            "the client and the server")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class GrpcClient(_ClientBase):
    """TF Serving's gRPC ``PredictionService`` (port 8500).

    ``target`` ``host:port``; ``timeout`` seconds per try; ``retries`` extra tries on UNAVAILABLE /
    DEADLINE_EXCEEDED with backoff ``backoff * 2**k``; ``max_message_mb`` caps requests (checked before
    sending) and responses; ``version`` pins a model version (default: the server's latest);
    ``max_request_batch`` faces at most per request (larger calls are split, outputs concatenated).
    """

    RETRY_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED")

    def __init__(self, target: str = "127.0.0.1:8500", model_name: str = "mb05_120x120",
                 signature: str = "serving_default", timeout: float = DEFAULT_TIMEOUT_S,
                 retries: int = DEFAULT_RETRIES, max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
                 backoff: float = DEFAULT_BACKOFF_S, version: int | None = None,
                 max_request_batch: int | None = DEFAULT_MAX_REQUEST_BATCH):
        super().__init__(model_name, signature, timeout, retries, backoff, max_message_mb, version,
                         max_request_batch)
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.target = target
        limit = int(self.max_message_mb * 1024 * 1024)
        self._grpc = grpc
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", limit),
                                                              ("grpc.max_receive_message_length", limit),
                                                              ("grpc.enable_retries", 0)])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def _spec(self, msg, signature: str | None):
        msg.model_spec.name = self.model_name
        if signature is not None:
            msg.model_spec.signature_name = signature
        if self.version is not None:
            msg.model_spec.version.value = int(self.version)

    def _call(self, method, request, what: str):
        grpc = self._grpc
        tries = self.retries + 1
        for attempt in range(tries):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as exc:
                code = exc.code()
                if code.name in self.RETRY_CODES and attempt + 1 < tries:
                    self._sleep(attempt)
                    continue
                raise self._error(exc, attempt + 1, what) from None

    def _error(self, exc, tries: int, what: str) -> ServingError:
        code, details = exc.code(), (exc.details() or "").strip().splitlines()
        details = details[0] if details else ""
        t = f"{tries} {'try' if tries == 1 else 'tries'}"
        if code.name == "UNAVAILABLE":
            return ServingError(f"cannot reach TF Serving at {self.target} (UNAVAILABLE) after {t}; "
                                "is the server running?")
        if code.name == "DEADLINE_EXCEEDED":
            return ServingError(f"TF Serving at {self.target} did not answer within {self.timeout:g} s "
                                f"(DEADLINE_EXCEEDED) after {t}; raise timeout= or send smaller batches")
        if code.name == "NOT_FOUND":
            if "signature" in details.lower():
                return ServingError(f"signature '{what}' not found for model '{self.model_name}' on the server "
                                    f"at {self.target} ({details})")
            v = f" version {self.version}" if self.version is not None else ""
            return ServingError(f"model '{self.model_name}'{v} not found on the server at {self.target} "
                                f"({details}); check models.config / the model name")
        if code.name == "RESOURCE_EXHAUSTED":
            return ServingError(f"request too large: the server at {self.target} refused it (RESOURCE_EXHAUSTED: "
                                f"{details}); send fewer or smaller images per request")
        if code.name == "INVALID_ARGUMENT":
            return ServingError(f"the server at {self.target} rejected the {what} request (INVALID_ARGUMENT): {details}")
        return ServingError(f"TF Serving at {self.target} failed ({code.name}): {details}")

    def _predict_one(self, inputs: dict, signature: str) -> dict:
        """One ``Predict`` request."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        req = predict_pb2.PredictRequest()
        self._spec(req, signature)
        for k, v in inputs.items():
            req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
        size = req.ByteSize()
        if size > self.max_message_mb * 1024 * 1024:
            raise self._too_large(size, "client max_message_mb")
        resp = self._call(self.stub.Predict, req, signature)
        return {k: tf.make_ndarray(v) for k, v in resp.outputs.items()}

    def metadata(self) -> dict:
        """``{signature: {"inputs": {name: (dtype, shape)}, "outputs": {...}}}`` from ``GetModelMetadata``."""
        import tensorflow as tf
        from tensorflow_serving.apis import get_model_metadata_pb2

        req = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(req, None)
        req.metadata_field.append("signature_def")
        resp = self._call(self.stub.GetModelMetadata, req, "metadata")
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        resp.metadata["signature_def"].Unpack(sig_map)

        def desc(infos):
            return {k: (tf.dtypes.as_dtype(v.dtype).name,
                        None if v.tensor_shape.unknown_rank else [d.size for d in v.tensor_shape.dim])
                    for k, v in infos.items()}

        return {k: {"inputs": desc(s.inputs), "outputs": desc(s.outputs)} for k, s in sig_map.signature_def.items()
                if not k.startswith("__")}  # __saved_model_init_op

    def close(self) -> None:
        self.channel.close()


class RestClient(_ClientBase):
    """TF Serving's REST API (port 8501): ``POST /v1/models/NAME[/versions/V]:predict`` with
    ``{"signature_name", "inputs"}`` (columnar JSON; uint8 crops as nested lists, images as ``{"b64": ...}``).
    Calls of more than ``max_request_batch`` faces are split into consecutive requests (outputs concatenated)."""

    RETRY_HTTP = (502, 503, 504)

    def __init__(self, url: str = "http://127.0.0.1:8501", model_name: str = "mb05_120x120",
                 signature: str = "serving_default", timeout: float = DEFAULT_TIMEOUT_S,
                 retries: int = DEFAULT_RETRIES, max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
                 backoff: float = DEFAULT_BACKOFF_S, version: int | None = None,
                 max_request_batch: int | None = DEFAULT_MAX_REQUEST_BATCH):
        super().__init__(model_name, signature, timeout, retries, backoff, max_message_mb, version,
                         max_request_batch)
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            self.url = "http://" + self.url

    @property
    def model_url(self) -> str:
        v = f"/versions/{int(self.version)}" if self.version is not None else ""
        return f"{self.url}/v1/models/{self.model_name}{v}"

    @staticmethod
    def _to_json(v: np.ndarray):
        if v.dtype == object or v.dtype.kind in "SU":
            def enc(x):
                if isinstance(x, np.ndarray):
                    return [enc(y) for y in x]
                b = x if isinstance(x, (bytes, bytearray)) else str(x).encode()
                return {"b64": base64.b64encode(b).decode("ascii")}
            return enc(v)
        return v.tolist()

    def _request(self, method: str, url: str, body: bytes | None, what: str) -> dict:
        tries = self.retries + 1
        for attempt in range(tries):
            req = urllib.request.Request(url, data=body, method=method,
                                         headers={"Content-Type": "application/json"} if body is not None else {})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as exc:
                try:
                    msg = json.loads(exc.read()).get("error", "")
                except (ValueError, AttributeError, OSError):
                    msg = exc.reason
                if exc.code in self.RETRY_HTTP and attempt + 1 < tries:
                    self._sleep(attempt)
                    continue
                raise self._http_error(exc.code, str(msg).splitlines()[0] if msg else "", what, attempt + 1) from None
            except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                if attempt + 1 < tries:
                    self._sleep(attempt)
                    continue
                t = f"{tries} {'try' if tries == 1 else 'tries'}"
                if isinstance(reason, (socket.timeout, TimeoutError)):
                    raise ServingError(f"TF Serving REST API at {self.url} did not answer within {self.timeout:g} s "
                                       f"after {t}; raise timeout= or send smaller batches") from None
                raise ServingError(f"cannot reach TF Serving REST API at {self.url} ({reason}) after {t}; "
                                   "is the server running?") from None
            except json.JSONDecodeError:
                raise ServingError(f"{url}: the server's answer is not JSON (is this TF Serving's REST port?)") from None
        raise AssertionError("unreachable")

    def _http_error(self, status: int, msg: str, what: str, tries: int) -> ServingError:
        if status == 404:
            if "signature" in msg.lower():
                return ServingError(f"signature '{what}' not found for model '{self.model_name}' on the server at "
                                    f"{self.url} ({msg})")
            return ServingError(f"model '{self.model_name}' not found on the server at {self.url} ({msg}); "
                                "check models.config / the model name")
        if status == 413:
            return ServingError(f"request too large: the server at {self.url} refused it (HTTP 413: {msg}); send "
                                "fewer or smaller images per request")
        if status == 400:
            return ServingError(f"the server at {self.url} rejected the {what} request (HTTP 400): {msg}")
        return ServingError(f"TF Serving REST API at {self.url} failed (HTTP {status}) after {tries} "
                            f"{'try' if tries == 1 else 'tries'}: {msg}")

    def _predict_one(self, inputs: dict, signature: str) -> dict:
        """One ``:predict`` request (columnar): ``{input: numpy}`` → ``{output: numpy float32}``."""
        body = json.dumps({"signature_name": signature,
                           "inputs": {k: self._to_json(np.asarray(v)) for k, v in inputs.items()}}).encode()
        if len(body) > self.max_message_mb * 1024 * 1024:
            raise self._too_large(len(body), "client max_message_mb, JSON body")
        out = self._request("POST", self.model_url + ":predict", body, signature)
        outputs = out.get("outputs")
        if outputs is None:
            raise ServingError(f"{self.model_url}:predict answered without \"outputs\": {str(out)[:200]}")
        if not isinstance(outputs, dict):  # TF Serving unwraps a single output
            outputs = {"output": outputs}
        return {k: np.asarray(v, np.float32) for k, v in outputs.items()}

    def status(self) -> dict:
        """``GET /v1/models/NAME``: the model's version status."""
        return self._request("GET", self.model_url, None, "status")

    def metadata(self) -> dict:
        """``GET /v1/models/NAME/metadata``: the signature defs (JSON)."""
        return self._request("GET", self.model_url + "/metadata", None, "metadata")
