"""The face-detector interface shared by every detector in :mod:`tf2dasl.detect`.

Coordinates: boxes are ``[x0, y0, x1, y1]`` float32 in **0-based image pixels** of the image passed to
:meth:`FaceDetector.detect` (integer values are pixel centres, so the box that covers a whole ``W x H``
image is ``[-0.5, -0.5, W - 0.5, H - 0.5]``); keypoints are ``(K, 2)`` ``(x, y)`` in the same frame.
Boxes are not clipped to the image: a face cut by the border can have a box reaching outside it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError


class DetectorError(UserError):
    """A detector that cannot be built or run (missing model file, unknown name, bad input)."""


@dataclass
class Detection:
    """One face.

    box: ``(4,)`` float32 ``[x0, y0, x1, y1]``, 0-based image pixels.
    score: confidence in ``[0, 1]``.
    keypoints: ``(K, 2)`` float32 ``(x, y)`` image pixels, or ``None`` (BlazeFace: K = 6, in order right
        eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion; "right" is the
        subject's right, which is on the image's left).
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.score = float(self.score)
        if self.keypoints is not None:
            self.keypoints = np.asarray(self.keypoints, dtype=np.float32).reshape(-1, 2)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def size(self) -> float:
        """The box's shorter side in pixels (what ``min_size`` filters on)."""
        return min(self.width, self.height)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between boxes ``a (N, 4)`` and ``b (M, 4)`` (``[x0, y0, x1, y1]``) → ``(N, M)``."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def scale_shift_box(box: np.ndarray, scale: float, shift_x: float, shift_y: float) -> np.ndarray:
    """The square box of side ``scale * s`` centred at ``(cx + shift_x * s, cy + shift_y * s)``.

    ``s = (w + h) / 2`` and ``(cx, cy)`` are the mean side and centre of ``box`` ``[x0, y0, x1, y1]``;
    works on ``(4,)`` or ``(N, 4)``. This is the linear map detectors use in ``box_to_faceboxes``.
    """
    b = np.asarray(box, np.float32)
    s = ((b[..., 2] - b[..., 0]) + (b[..., 3] - b[..., 1])) / 2.0
    cx = (b[..., 0] + b[..., 2]) / 2.0 + shift_x * s
    cy = (b[..., 1] + b[..., 3]) / 2.0 + shift_y * s
    half = scale * s / 2.0
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=-1).astype(np.float32)


class FaceDetector(ABC):
    """Finds faces in a BGR image.

    Common options:
      score_threshold: drop detections scoring below this (each detector has its own default).
      min_size: drop boxes whose shorter side is below this many pixels (0: keep all).
      max_faces: keep at most this many (highest scores); ``None``: all.

    Subclasses implement :meth:`_detect` (raw detections, any order) and may override
    :meth:`box_to_faceboxes`.
    """

    name: str = "detector"
    #: Linear map of this detector's box to a FaceBoxes-like box (see :meth:`box_to_faceboxes`).
    FACEBOXES_SCALE: float = 1.0
    FACEBOXES_SHIFT_X: float = 0.0
    FACEBOXES_SHIFT_Y: float = 0.0

    def __init__(self, score_threshold: float = 0.5, min_size: float = 0.0, max_faces: int | None = None):
        if not 0.0 <= float(score_threshold) <= 1.0:
            raise DetectorError(f"{self.name}: score_threshold must be in [0, 1], got {score_threshold}")
        if max_faces is not None and int(max_faces) < 1:
            raise DetectorError(f"{self.name}: max_faces must be >= 1 or None, got {max_faces}")
        self.score_threshold = float(score_threshold)
        self.min_size = float(min_size or 0.0)
        self.max_faces = None if max_faces is None else int(max_faces)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(score_threshold={self.score_threshold}, min_size={self.min_size}, "
            f"max_faces={self.max_faces})"
        )

    @abstractmethod
    def _detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Raw detections for a checked ``(H, W, 3)`` uint8 BGR image, in any order."""

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in ``image_bgr`` ``(H, W, 3)`` uint8 BGR, sorted by score (highest first).

        Boxes and keypoints are in 0-based pixels of ``image_bgr``; see :class:`Detection`.
        """
        image = np.asarray(image_bgr)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DetectorError(
                f"{self.name}: expected an (H, W, 3) uint8 BGR image, got shape {image.shape} dtype {image.dtype}"
            )
        if image.shape[0] < 1 or image.shape[1] < 1:
            return []
        dets = [
            d
            for d in self._detect(np.ascontiguousarray(image))
            if d.score >= self.score_threshold and d.size >= self.min_size
        ]
        dets.sort(key=lambda d: -d.score)
        if self.max_faces is not None:
            dets = dets[: self.max_faces]
        return dets

    __call__ = detect

    def box_to_faceboxes(self, box: np.ndarray) -> np.ndarray:
        """Map this detector's box ``[x0, y0, x1, y1]`` (``(4,)`` or ``(N, 4)``) to a FaceBoxes-like box.

        3DDFA_V2's ``parse_roi_box_from_bbox`` (centre moved down by ``0.14 * s``, side ``1.58 * s``,
        ``s`` the mean side) was tuned for FaceBoxes' boxes; fed the returned box it gives the crop
        3DDFA_V2 computes from the face's 68 landmarks (``parse_roi_box_from_landmark``). The map is
        :func:`scale_shift_box` with the class constants ``FACEBOXES_SCALE``, ``FACEBOXES_SHIFT_X``,
        ``FACEBOXES_SHIFT_Y`` (square output box), fitted by :mod:`tf2dasl.detect.calibration`.
        """
        return scale_shift_box(box, self.FACEBOXES_SCALE, self.FACEBOXES_SHIFT_X, self.FACEBOXES_SHIFT_Y)
