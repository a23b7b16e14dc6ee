"""TF Serving over gRPC (its ``PredictionService``, port 8500) behind the predictor contract
(:class:`~tf2dasl.inference.serving_client.ServingClient`).

Example::

    from tf2dasl.inference.grpc_runtime import GrpcClient
    with GrpcClient("127.0.0.1:8500", "mb05_120x120") as client:
        out = client.predict_images([open("face.jpg", "rb").read()], [[x0, y0, x1, y1]])
        out["landmarks_2d_image"]   # (1, 68, 2) image pixels
"""
from __future__ import annotations

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from .serving_client import (DEFAULT_BACKOFF_S, DEFAULT_MAX_MESSAGE_MB, DEFAULT_MAX_REQUEST_BATCH, DEFAULT_RETRIES,
                             DEFAULT_TIMEOUT_S, ServingClient, ServingError, tries_text)


class GrpcClient(ServingClient):
    """TF Serving's gRPC ``PredictionService`` (port 8500).

    ``target`` ``host:port``; retried: UNAVAILABLE / DEADLINE_EXCEEDED; the other arguments as
    :class:`~tf2dasl.inference.serving_client.ServingClient`.
    """

    runtime = "grpc"

    RETRY_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED")

    def __init__(self, target: str = "127.0.0.1:8500", model_name: str = "mb05_120x120",
                 timeout: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                 max_message_mb: float = DEFAULT_MAX_MESSAGE_MB, backoff: float = DEFAULT_BACKOFF_S,
                 version: int | None = None, max_request_batch: int | None = DEFAULT_MAX_REQUEST_BATCH,
                 input_size: int | None = None, channels: int = 3):
        super().__init__(model_name, timeout, retries, backoff, max_message_mb, version, max_request_batch,
                         input_size, channels)
        self.target = target
        limit = int(self.max_message_mb * 1024 * 1024)
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
        t = tries_text(tries)
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

    def _request_once(self, inputs: dict, signature: str) -> dict:
        """One ``Predict`` request."""
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
