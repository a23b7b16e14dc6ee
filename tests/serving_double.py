"""A test double for TF Serving: an in-process gRPC ``PredictionService`` and a REST ``:predict`` endpoint over an
export, so that the clients (:mod:`tf2dasl.serving`) and ``reconstruct --server`` are tested without
``tensorflow_model_server`` (no binary installs here). It is not shipped and not a server to deploy: the real one
is the official ``tensorflow/serving`` image (``serving/``).

The SavedModels (``EXPORT_DIR/saved_model/NAME/VERSION/``, the latest version of each model) are loaded with
``tf.saved_model.load``; requests convert with ``tf.make_ndarray`` / ``tf.make_tensor_proto``. Errors use TF
Serving's status codes: ``NOT_FOUND`` for an unknown model, version or signature, ``INVALID_ARGUMENT`` for a
malformed request (missing/extra inputs, wrong dtype or shape, undecodable image), ``RESOURCE_EXHAUSTED`` (gRPC's
own) for a message over ``max_message_mb``. REST answers ``{"error": ...}`` with HTTP 404 / 400 / 413 / 500, as TF
Serving does, to every request: a body that is not JSON or nested too deeply and a bad ``Content-Length`` are
400s, a ``Content-Length`` over the limit is a 413 answered before the body is read, anything unexpected a 500 —
never a closed connection; the port queues :data:`REST_BACKLOG` connections. No batching, no model reloads.
"""
from __future__ import annotations

import base64
import json
import threading
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from tf2dasl.errors import UserError

DEFAULT_MAX_MESSAGE_MB = 64
#: Connections the REST port queues before accepting them (a production server's listen backlog; Python's
#: default of 5 resets concurrent clients' connections instead of answering them)
REST_BACKLOG = 1024
#: How long the REST port goes on reading (and discarding) a refused over-limit body after answering 413, so the
#: client, still sending, gets the answer instead of a reset connection ("lingering close")
LINGER_S = 2.0
#: Bytes read at a time while discarding a refused body
DRAIN_CHUNK = 1 << 16


class LocalServingError(Exception):
    """A request the local server refuses: ``code`` is a gRPC status name (NOT_FOUND, INVALID_ARGUMENT, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


HTTP_STATUS = {"NOT_FOUND": 404, "INVALID_ARGUMENT": 400, "RESOURCE_EXHAUSTED": 413, "INTERNAL": 500,
               "FAILED_PRECONDITION": 400, "UNIMPLEMENTED": 501}


@dataclass
class ServedModel:
    """One loaded SavedModel version: signatures by name, their input specs, and the SignatureDef protos."""

    name: str
    version: int
    path: Path
    loaded: object
    signatures: dict
    signature_defs: dict = field(default_factory=dict)

    def input_specs(self, signature: str) -> dict:
        """``{input name: tf.TensorSpec}`` of a signature."""
        return dict(self.signatures[signature].structured_input_signature[1])


def find_saved_models(export_dir: str | Path) -> dict[str, tuple[int, Path]]:
    """``{model name: (latest version, path)}`` under an export dir (``saved_model/NAME/V/``) or a model base
    path (``NAME/V/``, TF Serving's ``--model_base_path`` layout)."""
    d = Path(export_dir)
    roots = [d / "saved_model", d]
    found: dict[str, tuple[int, Path]] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for pb in root.glob("*/*/saved_model.pb"):
            vdir = pb.parent
            if not vdir.name.isdigit():
                continue
            name, version = vdir.parent.name, int(vdir.name)
            if name not in found or version > found[name][0]:
                found[name] = (version, vdir)
        if found:
            break
        if (root / "saved_model.pb").is_file() and root.name.isdigit():  # a version folder itself
            found[root.parent.name] = (int(root.name), root)
    return found


def load_served_models(export_dir: str | Path) -> dict[str, ServedModel]:
    """Load the latest version of every model in ``export_dir`` (see :func:`find_saved_models`)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    found = find_saved_models(export_dir)
    if not found:
        raise UserError(f"{export_dir}: no SavedModel found (expected saved_model/NAME/VERSION/saved_model.pb); "
                        f"run `tf2dasl export MODEL_DIR --out {export_dir}`")
    models = {}
    for name, (version, path) in sorted(found.items()):
        loaded = tf.saved_model.load(str(path))
        sm = saved_model_pb2.SavedModel()
        sm.ParseFromString((path / "saved_model.pb").read_bytes())
        defs = dict(sm.meta_graphs[0].signature_def) if sm.meta_graphs else {}
        models[name] = ServedModel(name, version, path, loaded, dict(loaded.signatures), defs)
    return models


def _op_error_line(message: str) -> str:
    """The informative line of a TF op error (skipping "Graph execution error:", node and stack lines)."""
    skip = ("Graph execution error", "Detected at node", "<stack traces", "[[", "Traceback", "File ")
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(skip)]
    return (useful or lines or ["error"])[0]


class LocalModels:
    """The request logic both transports share: look up, validate, run, convert."""

    def __init__(self, models: dict[str, ServedModel]):
        self.models = models

    def get(self, name: str, version: int | None = None) -> ServedModel:
        m = self.models.get(name)
        if m is None:
            raise LocalServingError("NOT_FOUND", f"Servable not found for request: Latest({name}); "
                                                 f"served models: {sorted(self.models)}")
        if version is not None and version != m.version:
            raise LocalServingError("NOT_FOUND", f"Servable not found for request: Specific({name}, {version})")
        return m

    def predict(self, name: str, version: int | None, signature: str, inputs: dict[str, np.ndarray],
                output_filter=()) -> tuple[ServedModel, dict[str, np.ndarray]]:
        """Validate ``inputs`` against the signature and run it; numpy outputs (filtered if asked)."""
        import tensorflow as tf

        m = self.get(name, version)
        signature = signature or "serving_default"
        if signature not in m.signatures:
            raise LocalServingError("NOT_FOUND", f"Serving signature key \"{signature}\" not found; model {name} "
                                                 f"has {sorted(m.signatures)}")
        specs = m.input_specs(signature)
        missing, extra = sorted(set(specs) - set(inputs)), sorted(set(inputs) - set(specs))
        if missing or extra:
            raise LocalServingError("INVALID_ARGUMENT",
                                    f"signature {signature} takes inputs {sorted(specs)}; missing {missing}, "
                                    f"unexpected {extra}")
        feed = {}
        for key, spec in specs.items():
            arr = inputs[key]
            want = spec.dtype.as_numpy_dtype
            if spec.dtype == tf.string:
                ok = arr.dtype == object or arr.dtype.kind in "SU"
            else:
                ok = arr.dtype == np.dtype(want)
            if not ok:
                raise LocalServingError("INVALID_ARGUMENT", f"input '{key}' must be {spec.dtype.name}, got "
                                                            f"{arr.dtype.name if arr.dtype != object else 'string'}")
            if not spec.shape.is_compatible_with(arr.shape):
                raise LocalServingError("INVALID_ARGUMENT", f"input '{key}' must have shape {spec.shape.as_list()} "
                                                            f"(None: any), got {list(arr.shape)}")
            feed[key] = tf.constant(arr, dtype=spec.dtype)
        sizes = {int(v.shape[0]) for v in feed.values() if v.shape.rank}
        if len(sizes) > 1:
            raise LocalServingError("INVALID_ARGUMENT", f"inputs have different batch sizes {sorted(sizes)}")
        try:
            out = m.signatures[signature](**feed)
        except tf.errors.InvalidArgumentError as exc:
            raise LocalServingError("INVALID_ARGUMENT", _op_error_line(exc.message)) from None
        except tf.errors.OpError as exc:
            raise LocalServingError("INTERNAL", _op_error_line(exc.message)) from None
        unknown = sorted(set(output_filter) - set(out))
        if unknown:
            raise LocalServingError("INVALID_ARGUMENT", f"output_filter names unknown outputs {unknown}")
        keys = list(output_filter) or list(out)
        return m, {k: out[k].numpy() for k in keys}


# ============================================================================ gRPC
def _servicer_class():
    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

    class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        """``Predict`` and ``GetModelMetadata`` over :class:`LocalModels` (other RPCs: UNIMPLEMENTED)."""

        def __init__(self, models: LocalModels):
            self.models = models

        @staticmethod
        def _abort(context, err: LocalServingError):
            context.abort(getattr(grpc.StatusCode, err.code), err.message)

        def Predict(self, request, context):
            import tensorflow as tf

            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            try:
                inputs = {}
                for key, proto in request.inputs.items():
                    try:
                        inputs[key] = tf.make_ndarray(proto)
                    except Exception as exc:  # malformed TensorProto
                        raise LocalServingError("INVALID_ARGUMENT", f"input '{key}': cannot decode the TensorProto "
                                                                    f"({type(exc).__name__}: {exc})") from None
                m, out = self.models.predict(spec.name, version, spec.signature_name, inputs,
                                             list(request.output_filter))
            except LocalServingError as err:
                self._abort(context, err)
                return None
            resp = predict_pb2.PredictResponse()
            resp.model_spec.name = m.name
            resp.model_spec.version.value = m.version
            resp.model_spec.signature_name = spec.signature_name or "serving_default"
            for k, v in out.items():
                resp.outputs[k].CopyFrom(tf.make_tensor_proto(v))
            return resp

        def GetModelMetadata(self, request, context):
            spec = request.model_spec
            try:
                m = self.models.get(spec.name, spec.version.value if spec.HasField("version") else None)
                fields = list(request.metadata_field)
                if fields != ["signature_def"]:
                    raise LocalServingError("INVALID_ARGUMENT", f"metadata_field must be ['signature_def'], got {fields}")
            except LocalServingError as err:
                self._abort(context, err)
                return None
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            for k, v in m.signature_defs.items():
                sig_map.signature_def[k].CopyFrom(v)
            resp = get_model_metadata_pb2.GetModelMetadataResponse()
            resp.model_spec.name = m.name
            resp.model_spec.version.value = m.version
            resp.metadata["signature_def"].Pack(sig_map)
            return resp

    return PredictionServicer


def make_servicer(models: dict[str, ServedModel] | LocalModels):
    """A ``PredictionServiceServicer`` subclass instance over loaded models."""
    return _servicer_class()(models if isinstance(models, LocalModels) else LocalModels(models))


class LocalServer:
    """A running local server (gRPC and/or REST). ``port`` / ``rest_port`` are the bound ports; ``stop()``."""

    def __init__(self, models: LocalModels, grpc_server=None, port=None, http_server=None, rest_port=None,
                 host="127.0.0.1"):
        self.models, self.grpc_server, self.port = models, grpc_server, port
        self.http_server, self.rest_port, self.host = http_server, rest_port, host

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    def stop(self, grace: float | None = 0.5) -> None:
        if self.grpc_server is not None:
            self.grpc_server.stop(grace).wait()
            self.grpc_server = None
        if self.http_server is not None:
            self.http_server.shutdown()
            self.http_server.server_close()
            self.http_server = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve(export_dir: str | Path | None = None, port: int | None = 8500, rest_port: int | None = None,
          host: str = "127.0.0.1", max_workers: int = 8, max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
          models: LocalModels | None = None) -> LocalServer:
    """Start serving ``export_dir`` (its latest SavedModel versions) in this process; returns at once.

    ``port``: gRPC port (0: any free one; None: no gRPC); ``rest_port``: REST port (0: any; None: none).
    ``max_message_mb``: the largest gRPC message (request or response) the server accepts / sends.
    """
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    if models is None:
        models = LocalModels(load_served_models(export_dir))
    server = LocalServer(models, host=host)
    if port is not None:
        limit = int(max_message_mb * 1024 * 1024)
        gs = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                         options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                                  ("grpc.so_reuseport", 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(make_servicer(models), gs)
        bound = gs.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise UserError(f"cannot listen on {host}:{port} (port in use?)")
        gs.start()
        server.grpc_server, server.port = gs, bound
    if rest_port is not None:
        try:
            hs = _RestServer((host, rest_port), _rest_handler(models, max_message_mb))
        except OSError as exc:
            server.stop()
            raise UserError(f"cannot listen on {host}:{rest_port} ({exc.strerror or exc})") from None
        hs.daemon_threads = True
        t = threading.Thread(target=hs.serve_forever, name="tf2dasl-rest", daemon=True)
        t.start()
        server.http_server, server.rest_port = hs, hs.server_address[1]
    return server


# ============================================================================ REST
class _RestServer(ThreadingHTTPServer):
    request_queue_size = REST_BACKLOG


def _json_to_array(value, dtype) -> np.ndarray:
    import tensorflow as tf

    if dtype == tf.string:
        def unwrap(v):
            if isinstance(v, list):
                return [unwrap(x) for x in v]
            if isinstance(v, dict) and set(v) == {"b64"}:
                try:
                    return base64.b64decode(v["b64"], validate=True)
                except (ValueError, TypeError):
                    raise LocalServingError("INVALID_ARGUMENT", "a {\"b64\": ...} value is not valid base64") from None
            if isinstance(v, str):
                return v.encode()
            raise LocalServingError("INVALID_ARGUMENT", f"string inputs take strings or {{\"b64\": ...}}, got {type(v).__name__}")
        return np.array(unwrap(value), dtype=object)
    try:
        return np.asarray(value, dtype=dtype.as_numpy_dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise LocalServingError("INVALID_ARGUMENT", f"cannot read the JSON values as {dtype.name} ({exc})") from None


def _rest_handler(models: LocalModels, max_message_mb: float):
    limit = int(max_message_mb * 1024 * 1024)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _error(self, err: LocalServingError) -> None:
            self._send(HTTP_STATUS.get(err.code, 500), {"error": err.message})

        def _route(self):
            path = self.path.split("?", 1)[0]
            if not path.startswith("/v1/models/"):
                raise LocalServingError("NOT_FOUND", f"unknown path {path}")
            rest = path[len("/v1/models/"):]
            verb = None
            if ":" in rest:
                rest, verb = rest.rsplit(":", 1)
            parts = rest.strip("/").split("/")
            name, version, tail = parts[0], None, parts[1:]
            if len(tail) >= 2 and tail[0] in ("versions", "labels"):
                if tail[0] == "labels" or not tail[1].isdigit():
                    raise LocalServingError("INVALID_ARGUMENT", f"bad version in {path}")
                version, tail = int(tail[1]), tail[2:]
            return name, version, tail, verb

        def do_GET(self):
            try:
                name, version, tail, verb = self._route()
                m = models.get(name, version)
                if tail == ["metadata"]:
                    from google.protobuf.json_format import MessageToDict

                    sigs = {k: MessageToDict(v) for k, v in m.signature_defs.items()}
                    self._send(200, {"model_spec": {"name": m.name, "signature_name": "", "version": str(m.version)},
                                     "metadata": {"signature_def": {"signature_def": sigs}}})
                elif not tail and verb is None:
                    self._send(200, {"model_version_status": [{"version": str(m.version), "state": "AVAILABLE",
                                                               "status": {"error_code": "OK", "error_message": ""}}]})
                else:
                    raise LocalServingError("NOT_FOUND", f"unknown path {self.path}")
            except LocalServingError as err:
                self._error(err)

        def _body(self) -> bytes:
            """The request's body, read only when its ``Content-Length`` is a number within the limit: a bad
            length is a 400 and an over-limit one a 413, both answered before reading (the connection is then
            closed: the unread body cannot be skipped)."""
            text = self.headers.get("Content-Length") or "0"
            try:
                length = int(text)
                if length < 0:
                    raise ValueError
            except ValueError:
                self.close_connection = True
                raise LocalServingError("INVALID_ARGUMENT", f"bad Content-Length header {text!r}") from None
            if length > limit:
                self.close_connection, self._unread = True, length
                raise LocalServingError("RESOURCE_EXHAUSTED", f"request of {length / 2**20:.1f} MB exceeds the "
                                                              f"server's limit of {max_message_mb:g} MB")
            return self.rfile.read(length)

        def _drain(self) -> None:
            """Read and discard the refused body for up to :data:`LINGER_S` (after the answer was sent)."""
            left, self._unread = self._unread, 0
            try:
                self.connection.settimeout(LINGER_S)
                while left > 0:
                    chunk = self.rfile.read1(min(left, DRAIN_CHUNK))
                    if not chunk:
                        break
                    left -= len(chunk)
            except OSError:
                pass

        def do_POST(self):
            self._unread = 0
            try:
                self._predict()
            except LocalServingError as err:
                self._error(err)
            except RecursionError:
                self._error(LocalServingError("INVALID_ARGUMENT", "the request's JSON is nested too deeply"))
            except Exception as exc:  # an answer, never a dropped connection: TF Serving answers 500
                self._error(LocalServingError("INTERNAL", f"{type(exc).__name__}: {exc}"))
            if self._unread:
                self._drain()

        def _predict(self):
            raw = self._body()
            name, version, tail, verb = self._route()
            if verb != "predict" or tail:
                raise LocalServingError("NOT_FOUND", f"unknown path {self.path} (this server implements :predict)")
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise LocalServingError("INVALID_ARGUMENT", f"body is not valid JSON ({exc})") from None
            except RecursionError:
                raise LocalServingError("INVALID_ARGUMENT", "body is not valid JSON (nested too deeply)") from None
            if not isinstance(body, dict):
                raise LocalServingError("INVALID_ARGUMENT", "body must be a JSON object")
            signature = body.get("signature_name") or "serving_default"
            m = models.get(name, version)
            if signature not in m.signatures:
                raise LocalServingError("NOT_FOUND", f"Serving signature key \"{signature}\" not found")
            specs = m.input_specs(signature)
            row_format = "instances" in body
            if row_format == ("inputs" in body):
                raise LocalServingError("INVALID_ARGUMENT", "give exactly one of \"inputs\" (columnar) or "
                                                            "\"instances\" (row) in the request")
            if row_format:
                inst = body["instances"]
                if not isinstance(inst, list) or not inst:
                    raise LocalServingError("INVALID_ARGUMENT", "\"instances\" must be a non-empty list")
                if isinstance(inst[0], dict) and not (set(inst[0]) == {"b64"}):
                    cols = {k: [row.get(k) for row in inst] for k in inst[0]}
                elif len(specs) == 1:
                    cols = {next(iter(specs)): inst}
                else:
                    raise LocalServingError("INVALID_ARGUMENT", "row format with several inputs needs objects")
            else:
                cols = body["inputs"]
                if not isinstance(cols, dict):
                    if len(specs) != 1:
                        raise LocalServingError("INVALID_ARGUMENT", "\"inputs\" must name the signature's inputs")
                    cols = {next(iter(specs)): cols}
            arrays = {k: _json_to_array(v, specs[k].dtype) if k in specs else np.asarray(v)
                      for k, v in cols.items()}
            m, out = models.predict(name, version, signature, arrays)
            if row_format:
                n = len(next(iter(out.values())))
                preds = [{k: v[i].tolist() for k, v in out.items()} for i in range(n)]
                self._send(200, {"predictions": preds})
            else:
                self._send(200, {"outputs": {k: v.tolist() for k, v in out.items()}})

    return Handler
