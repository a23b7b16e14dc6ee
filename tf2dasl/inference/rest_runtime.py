"""TF Serving's REST API (port 8501) behind the predictor contract
(:class:`~tf2dasl.inference.serving_client.ServingClient`): ``POST /v1/models/NAME[/versions/V]:predict`` with
``{"signature_name", "inputs"}`` (columnar JSON; uint8 crops as nested lists, images as ``{"b64": ...}``)."""
from __future__ import annotations

import base64
import http.client
import json
import socket
import urllib.error
import urllib.request

import numpy as np

from .serving_client import (DEFAULT_BACKOFF_S, DEFAULT_MAX_MESSAGE_MB, DEFAULT_MAX_REQUEST_BATCH, DEFAULT_RETRIES,
                             DEFAULT_TIMEOUT_S, ServingClient, ServingError, tries_text)

#: Characters of an unexpected answer quoted in its error
ANSWER_SHOWN = 200


class RestClient(ServingClient):
    """TF Serving's REST API (port 8501): ``POST /v1/models/NAME[/versions/V]:predict`` with
    ``{"signature_name", "inputs"}`` (columnar JSON; uint8 crops as nested lists, images as ``{"b64": ...}``).
    Retried: connection errors, timeouts, HTTP 502/503/504; the other arguments as
    :class:`~tf2dasl.inference.serving_client.ServingClient`."""

    runtime = "rest"

    RETRY_HTTP = (502, 503, 504)

    def __init__(self, url: str = "http://127.0.0.1:8501", model_name: str = "mb05_120x120",
                 timeout: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                 max_message_mb: float = DEFAULT_MAX_MESSAGE_MB, backoff: float = DEFAULT_BACKOFF_S,
                 version: int | None = None, max_request_batch: int | None = DEFAULT_MAX_REQUEST_BATCH,
                 input_size: int | None = None, channels: int = 3):
        super().__init__(model_name, timeout, retries, backoff, max_message_mb, version, max_request_batch,
                         input_size, channels)
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
            except (urllib.error.URLError, ConnectionError, http.client.HTTPException, socket.timeout,
                    TimeoutError) as exc:
                if attempt + 1 < tries:
                    self._sleep(attempt)
                    continue
                raise self._connection_error(getattr(exc, "reason", exc), tries) from None
            except json.JSONDecodeError:
                raise ServingError(f"{url}: the server's answer is not JSON (is this TF Serving's REST port?)") from None
        raise AssertionError("unreachable")

    def _connection_error(self, reason, tries: int) -> ServingError:
        """One line for a request that got no HTTP answer: what happened to the connection, and the fix."""
        t = tries_text(tries)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return ServingError(f"TF Serving REST API at {self.url} did not answer within {self.timeout:g} s after "
                                f"{t}; raise timeout= or send smaller batches")
        if isinstance(reason, ConnectionRefusedError):
            return ServingError(f"cannot reach TF Serving REST API at {self.url} (connection refused) after {t}; "
                                "is the server running?")
        if isinstance(reason, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                               http.client.HTTPException)):
            return ServingError(f"TF Serving REST API at {self.url} closed the connection before answering "
                                f"({type(reason).__name__}: {reason}) after {t}; the server may be overloaded or "
                                "restarting: retry (raise retries=) or send fewer requests at once")
        return ServingError(f"cannot reach TF Serving REST API at {self.url} ({reason}) after {t}; is the server "
                            "running and is this its REST port?")

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
        return ServingError(f"TF Serving REST API at {self.url} failed (HTTP {status}) after {tries_text(tries)}: {msg}")

    def _request_once(self, inputs: dict, signature: str) -> dict:
        """One ``:predict`` request (columnar): ``{input: numpy}`` → ``{output: numpy float32}``."""
        body = json.dumps({"signature_name": signature,
                           "inputs": {k: self._to_json(np.asarray(v)) for k, v in inputs.items()}}).encode()
        if len(body) > self.max_message_mb * 1024 * 1024:
            raise self._too_large(len(body), "client max_message_mb, JSON body")
        out = self._request("POST", self.model_url + ":predict", body, signature)
        outputs = out.get("outputs") if isinstance(out, dict) else None
        if outputs is None:
            raise ServingError(f"{self.model_url}:predict answered without \"outputs\": {str(out)[:ANSWER_SHOWN]}")
        if not isinstance(outputs, dict):  # TF Serving unwraps a single output
            outputs = {"output": outputs}
        try:
            return {k: np.asarray(v, np.float32) for k, v in outputs.items()}
        except (TypeError, ValueError):  # strings, nulls, rows of different lengths
            raise ServingError(f"{self.model_url}:predict answered \"outputs\" that are not arrays of numbers: "
                               f"{str(outputs)[:ANSWER_SHOWN]}") from None

    def status(self) -> dict:
        """``GET /v1/models/NAME``: the model's version status."""
        return self._request("GET", self.model_url, None, "status")

    def metadata(self) -> dict:
        """``GET /v1/models/NAME/metadata``: the signature defs (JSON)."""
        return self._request("GET", self.model_url + "/metadata", None, "metadata")
