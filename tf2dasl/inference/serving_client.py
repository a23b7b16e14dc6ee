"""What the TF Serving clients share (:mod:`.grpc_runtime`, :mod:`.rest_runtime`): the predictor contract over a
served export (``serving_default`` for crops, ``with_map`` for crops with landmark maps), ``predict_images`` over
its ``predict_image`` signature, input checks before anything is sent, request splitting and retries.

* ``predict(crops, maps=None)`` → :class:`~tf2dasl.inference.base.Prediction`: raw ``params`` and, in ``outputs``,
  every other output of the signature (``landmarks`` ``(B, 68, 3)`` crop pixels, ``landmarks_2d``, ``pose``,
  ``params_whitened``, + ``vertices`` for a ``--dense`` export);
* ``predict_images(encoded: list[bytes], roi_boxes (B, 4))`` → ``predict_image``'s outputs (a dict): the same plus
  ``landmarks_2d_image`` / ``landmarks_3d_image`` in image pixels;
* ``call_signature(signature, inputs)`` → any signature's outputs, ``{name: numpy}`` (inputs sent as given).

A call with more than ``max_request_batch`` faces (default :data:`DEFAULT_MAX_REQUEST_BATCH` = 32, the execution
batch of ``serving/batching_parameters.txt``) is sent as consecutive requests of at most that many, and their
outputs are concatenated in order: a TF Serving server whose ``max_batch_size`` is smaller than a call (without
``enable_large_batch_splitting``) would otherwise refuse it ("Task size N is larger than maximum input batch
size"). ``max_request_batch=None`` sends every call as one request.

Inputs are checked before anything is sent (a path instead of encoded bytes, no images, roi boxes that are not
finite, under one pixel or outside their image when the header tells its size, crops of the wrong dtype or
shape): one-line :class:`ServingError` errors. The exported model checks the same in its graph and answers
``INVALID_ARGUMENT`` naming the input (``tf2dasl.export.saved_model.check_image_inputs``). Transient failures are
retried ``retries`` times with exponential backoff (each transport names which); everything else fails at once
with a :class:`ServingError` (a :class:`~tf2dasl.errors.UserError`) of one line.
"""
from __future__ import annotations

import numbers
import os
import time

import numpy as np

from ..errors import UserError
from ..io.images import read_header
from .base import Prediction, Predictor
from .crops import InputError
from .export_dir import DEFAULT_SIGNATURE, MAP_SIGNATURE

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF_S = 0.1
DEFAULT_MAX_MESSAGE_MB = 64.0
# The most faces one request carries; a call with more is split into consecutive requests. Equal to
# max_execution_batch_size (and the last allowed_batch_sizes entry) in serving/batching_parameters.txt, and
# never above a server's max_batch_size, so it also works against a server without large-batch splitting.
DEFAULT_MAX_REQUEST_BATCH = 32
#: the image signature of an export's SavedModel
IMAGE_SIGNATURE = "predict_image"


class ServingError(UserError):
    """A served model cannot be reached or refused a request (one line naming the server and the fix)."""


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


class ServingClient(Predictor):
    """A model served by TF Serving behind the predictor contract. ``model_name`` the served model; ``input_size``
    its crop side (None: any square crop) and ``channels`` (4: it takes landmark maps through ``with_map``), as
    the model directory it was exported from says; ``timeout`` seconds per try; ``retries`` extra tries on
    transient failures with backoff ``backoff * 2**k``; ``max_message_mb`` caps requests (checked before sending)
    and responses; ``version`` pins a model version (default: the server's latest); ``max_request_batch`` faces at
    most per request (larger calls are split, outputs concatenated)."""

    def __init__(self, model_name: str, timeout: float, retries: int, backoff: float, max_message_mb: float,
                 version: int | None, max_request_batch: int | None, input_size: int | None, channels: int):
        super().__init__(model_name, input_size, channels)
        self.model_name = model_name
        self.timeout, self.retries, self.backoff = float(timeout), max(0, int(retries)), float(backoff)
        self.max_message_mb, self.version = float(max_message_mb), version
        if max_request_batch is not None:
            if isinstance(max_request_batch, bool) or not isinstance(max_request_batch, numbers.Integral) \
                    or max_request_batch < 1:
                raise ServingError(f"max_request_batch must be a positive integer or None, got {max_request_batch!r}")
            max_request_batch = int(max_request_batch)
        self.max_request_batch = max_request_batch

    # -- what a transport implements: one request, one response
    def _request_once(self, inputs: dict, signature: str) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def call_signature(self, signature: str, inputs: dict | None = None, **named) -> dict:
        """``{input name: numpy}`` (a dict and/or keyword arguments) → ``{output name: numpy}`` on ``signature``, sent
        as given (no checks). Inputs whose common batch is larger than ``max_request_batch`` go out as consecutive
        requests of at most that many rows; every output is concatenated along axis 0, in order."""
        inputs = {**(inputs or {}), **named}
        n, step = _batch_size(inputs), self.max_request_batch
        if step is None or n is None or n <= step:
            return self._request_once(inputs, signature)
        parts = []
        for start in range(0, n, step):
            out = self._request_once({k: v[start:start + step] for k, v in inputs.items()}, signature)
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

    # -- the contract and the image API
    def predict(self, crops, maps=None) -> Prediction:
        try:
            return super().predict(crops, maps)
        except InputError as exc:
            raise ServingError(str(exc)) from None

    def _predict(self, crops, maps):
        if maps is None:
            out = self.call_signature(DEFAULT_SIGNATURE, crops=crops)
        else:
            out = self.call_signature(MAP_SIGNATURE, crops=crops, maps=maps)
        if "params" not in out:
            raise ServingError(f"the server's answer has no \"params\" output (it has {sorted(out)}); is the model "
                               "on the server a tf2dasl export?")
        out = dict(out)
        landmarks = out.pop("landmarks_3d", None)  # an export's signature names its 3D landmarks so
        return Prediction(out.pop("params"), {**({} if landmarks is None else {"landmarks": landmarks}), **out})

    def predict_images(self, encoded, roi_boxes) -> dict:
        """Encoded images (list of JPEG/PNG bytes) and roi boxes ``(B, 4)`` → ``predict_image``'s outputs."""
        images, rois = _as_images(encoded, roi_boxes)
        return self.call_signature(IMAGE_SIGNATURE, images=images, roi_boxes=rois)

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.backoff * (2 ** attempt))

    def _too_large(self, nbytes: int, where: str) -> ServingError:
        return ServingError(f"request too large: {nbytes / 2**20:.1f} MB > the {self.max_message_mb:g} MB limit "
                            f"({where}); send fewer or smaller images per request, or raise max_message_mb on "
                            "the client and the server")


def tries_text(n: int) -> str:
    return f"{n} {'try' if n == 1 else 'tries'}"
