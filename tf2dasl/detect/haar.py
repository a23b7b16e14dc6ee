"""OpenCV's Haar cascade (Viola-Jones) frontal face detector: needs no model file; used only when named
(``--detector haar``), never as a silent fallback.

It uses ``haarcascade_frontalface_default.xml`` shipped with opencv-python(-headless) < 5 under
``cv2.data.haarcascades``. Frontal faces only (profiles are missed) and more false positives than
BlazeFace. Its square box covers roughly the eyebrows-to-chin face; see :meth:`box_to_faceboxes`.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .base import Detection, DetectorError, FaceDetector

CASCADE_FILE = "haarcascade_frontalface_default.xml"

# box_to_faceboxes calibration, the same procedure as BlazeFace's (the note above SHORT_RANGE in
# tf2dasl/detect/blazeface.py), on the 1,069 of the 1,207 300-W crops that Haar detects: the roi of the mapped box
# matches the ground-truth landmark roi with IoU 0.813 mean, 0.632 >= 0.8, side ratio 0.999 (the previous
# FaceBoxes-size constants 0.967 / 0 / 0.004 gave 0.658 / 0.079 / 1.228).
HAAR_FACEBOXES_SCALE = 0.787
HAAR_FACEBOXES_SHIFT_X = 0.007
HAAR_FACEBOXES_SHIFT_Y = 0.035


def default_cascade_path() -> Path | None:
    """``cv2.data.haarcascades / haarcascade_frontalface_default.xml``, or None if this OpenCV lacks it."""
    base = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not base:
        return None
    path = Path(base) / CASCADE_FILE
    return path if path.is_file() else None


class HaarDetector(FaceDetector):
    """OpenCV Haar cascade face detector.

    Args:
      cascade_path: the cascade XML (default: OpenCV's ``haarcascade_frontalface_default.xml``).
      score_threshold: minimum score (default 0: keep every detection that passes ``min_neighbors``).
        Scores are ``sigmoid(level_weight)`` from ``detectMultiScale3(..., outputRejectLevels=True)``,
        in (0, 1); 1.0 if OpenCV returns no weights.
      min_size: minimum box side in image pixels (also passed to OpenCV as its minSize, at least 20).
      max_faces: see :class:`FaceDetector`.
      scale_factor, min_neighbors: ``detectMultiScale`` parameters (1.1 and 5: OpenCV's usual values).
      max_side: images whose longer side exceeds this are downscaled for detection (speed), boxes are
        mapped back; ``None`` disables.
    """

    name = "haar"
    FACEBOXES_SCALE = HAAR_FACEBOXES_SCALE
    FACEBOXES_SHIFT_X = HAAR_FACEBOXES_SHIFT_X
    FACEBOXES_SHIFT_Y = HAAR_FACEBOXES_SHIFT_Y

    def __init__(
        self,
        cascade_path: str | os.PathLike | None = None,
        score_threshold: float = 0.0,
        min_size: float = 0.0,
        max_faces: int | None = None,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        max_side: int | None = 1024,
    ):
        super().__init__(score_threshold, min_size, max_faces)
        path = Path(cascade_path) if cascade_path is not None else default_cascade_path()
        if path is None or not path.is_file():
            where = path if path is not None else "cv2.data.haarcascades (this OpenCV build has none)"
            raise DetectorError(f"haar: cascade file {CASCADE_FILE} not found at {where}")
        self.cascade_path = path
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"haar: cannot load cascade {path}")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.max_side = None if max_side is None else int(max_side)

    def _detect(self, image_bgr: np.ndarray) -> list[Detection]:
        h, w = image_bgr.shape[:2]
        ratio = 1.0
        if self.max_side is not None and max(h, w) > self.max_side:
            ratio = self.max_side / max(h, w)
            size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
            image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))
        min_px = max(20, int(round(self.min_size * ratio)))
        rects, _levels, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_px, min_px),
            outputRejectLevels=True,
        )
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        weights = np.asarray(weights, np.float64).reshape(-1)
        if len(weights) == len(rects):
            scores = 1.0 / (1.0 + np.exp(-np.clip(weights, -50.0, 50.0)))
        else:
            scores = np.ones(len(rects))
        dets = []
        sx, sy = w / gray.shape[1], h / gray.shape[0]
        for (x, y, bw, bh), s in zip(rects, scores):
            # OpenCV's rect covers pixels x..x+bw-1: continuous [x, x+bw] → 0-based pixel centres (-0.5)
            box = np.array([x * sx, y * sy, (x + bw) * sx, (y + bh) * sy], np.float32) - 0.5
            dets.append(Detection(box, float(s), None))
        return dets
