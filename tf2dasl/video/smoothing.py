"""Temporal smoothing of tracked faces' 62 parameters: off, causal (live) or offline (look-ahead).

A smoother sees frames in order (:meth:`Smoother.push`) and hands back the frames that are ready, each with
the smoothed parameters of its faces (:class:`Smoothed`); :meth:`Smoother.flush` hands back the rest at the end.
``off`` and ``causal`` hand back every frame at once; ``offline`` holds ``ceil(3 * sigma)`` frames back.

What is smoothed, per track (``SmoothingConfig`` documents the numbers):

* **pose** — the 12 numbers of ``[s R | t]``, first moved from the frame's crop into the image frame
  (:func:`tf2dasl.geometry.camera.reframe_params` to the roi ``[0, 0, size, size]``): the crop follows the face,
  so crop-frame numbers jump whenever the crop moves; image-frame numbers move only with the head. Filtered
  per number (a linear filter of nearby scaled rotations is a scaled near-rotation), then moved back into the
  frame's crop, so ``params`` and ``roi_box`` of an output face stay consistent;
* **expression** — the 10 expression numbers, filtered like the pose (its own noise setting);
* **identity** — the 40 shape numbers: the mean over the track so far (``shape: mean``), since a person's face
  does not change from frame to frame.

Frames need ``index``; faces need ``track_id``, ``roi_box (4,)``, ``params (62,)`` and ``landmarks_3d (68, 3)``
(their size scales the One-Euro filter's speed). Numpy only: no model, no video, no files.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..geometry.camera import reframe_params
from ..geometry.conventions import CROP_OFFSET_V2, CropConvention
from ..geometry.morphable_model import EXPRESSION, NUM_EXP, NUM_PARAMS, NUM_POSE, NUM_SHAPE, POSE, SHAPE
from .filters import KalmanCV, OneEuro, gaussian_weights, window_radius
from .video_config import SmoothingConfig

#: Of the 12 pose numbers (row-major ``[s R | t]``), the translations; the other 9 are the scaled rotation.
TRANSLATION = np.array([3, 7, 11])
ROTATION = np.array([i for i in range(NUM_POSE) if i not in TRANSLATION])
#: A track whose last frame is this many frames old is forgotten by the causal smoother.
FORGET_AFTER = 300


@dataclass
class Smoothed:
    """A frame handed back by a smoother, with ``params (F, 62)`` for its ``F`` faces, in order."""

    frame: object
    params: np.ndarray


def _params(frame) -> np.ndarray:
    return (np.stack([np.asarray(f.params, np.float64) for f in frame.faces]) if frame.faces
            else np.zeros((0, NUM_PARAMS)))


class Smoother:
    """``mode: off``: every frame back at once, its parameters as they are (the base of the other two)."""

    delay = 0

    def __init__(self, config: SmoothingConfig | None = None, size: int = 120,
                 convention: CropConvention = CROP_OFFSET_V2):
        self.config = config or SmoothingConfig(mode="off")
        self.size, self.convention = size, convention
        self.ref = np.array([0.0, 0.0, size, size])

    def to_image(self, params: np.ndarray, rois: np.ndarray) -> np.ndarray:
        """Params ``(F, 62)`` of their crops → image frame (pose numbers independent of the crop)."""
        return reframe_params(params, rois, np.tile(self.ref, (len(params), 1)), self.size, self.convention)

    def to_crop(self, params: np.ndarray, rois: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_image`."""
        return reframe_params(params, np.tile(self.ref, (len(params), 1)), rois, self.size, self.convention)

    def push(self, frame) -> list[Smoothed]:
        return [Smoothed(frame, _params(frame).astype(np.float32))]

    def flush(self) -> list[Smoothed]:
        return []


class _TrackFilter:
    """The causal state of one track: pose and expression filters, the identity's running sum."""

    def __init__(self, cfg: SmoothingConfig):
        if cfg.causal_filter == "kalman":
            self.pose = KalmanCV(NUM_POSE, cfg.pose_noise, cfg.pose_adaptation)
            self.expression = KalmanCV(NUM_EXP, cfg.expression_noise)
        else:
            args = (cfg.one_euro_min_cutoff, cfg.one_euro_beta, cfg.one_euro_d_cutoff)
            self.pose = OneEuro(NUM_POSE, *args)
            self.expression = OneEuro(NUM_EXP, *args)
        self.shape_sum = np.zeros(NUM_SHAPE)
        self.count = 0
        self.last = None


class CausalSmoother(Smoother):
    """``mode: causal``: each frame from itself and earlier frames only (no delay), one filter state per track."""

    def __init__(self, config: SmoothingConfig, size: int = 120, convention: CropConvention = CROP_OFFSET_V2):
        super().__init__(config, size, convention)
        self.tracks: dict[int, _TrackFilter] = {}

    def _pose_scale(self, p: np.ndarray, face) -> np.ndarray:
        """What one unit of speed of each pose number is measured against (One-Euro): the scale ``s`` for the
        rotation entries, the face's size in pixels for the translations."""
        scale = np.empty(NUM_POSE)
        s = np.linalg.norm(p[:NUM_POSE].reshape(3, 4)[:2, :3], axis=1).mean()
        lm = np.asarray(face.landmarks_3d)[:, :2]
        scale[ROTATION] = s
        scale[TRANSLATION] = max(float(np.ptp(lm[:, 0]) + np.ptp(lm[:, 1])) / 2, 1.0)
        return scale

    def push(self, frame) -> list[Smoothed]:
        params = _params(frame)
        if not len(params):
            return [Smoothed(frame, params.astype(np.float32))]
        rois = np.stack([np.asarray(f.roi_box, np.float64) for f in frame.faces])
        img = self.to_image(params, rois)
        out = img.copy()
        cfg = self.config
        for i, face in enumerate(frame.faces):
            st = self.tracks.get(face.track_id)
            if st is None:
                st = self.tracks[face.track_id] = _TrackFilter(cfg)
            dt = 1.0 if st.last is None else max(1, frame.index - st.last)
            st.last = frame.index
            p = img[i]
            if cfg.causal_filter == "kalman":
                out[i, POSE] = st.pose.update(p[POSE], dt)
            else:
                out[i, POSE] = st.pose.update(p[POSE], dt, self._pose_scale(p, face))
            out[i, EXPRESSION] = st.expression.update(p[EXPRESSION], dt)
            st.shape_sum += p[SHAPE]
            st.count += 1
            if cfg.shape == "mean":
                out[i, SHAPE] = st.shape_sum / st.count
        for tid in [t for t, st in self.tracks.items() if frame.index - st.last > FORGET_AFTER]:
            del self.tracks[tid]
        return [Smoothed(frame, self.to_crop(out, rois).astype(np.float32))]


class OfflineSmoother(Smoother):
    """``mode: offline``: frame ``t`` is handed back once frame ``t + R`` has been pushed (``R`` = :attr:`delay`),
    each number the Gaussian-weighted mean over the track's frames within ``R`` (``offline_sigma``); the identity
    is the track's mean over every frame seen by then."""

    def __init__(self, config: SmoothingConfig, size: int = 120, convention: CropConvention = CROP_OFFSET_V2):
        super().__init__(config, size, convention)
        self.delay = window_radius(config.offline_sigma)
        self.pending: deque = deque()  # (frame, rois (F, 4))
        self.samples: dict[int, dict[int, np.ndarray]] = {}  # track → frame index → image-frame params (62,)
        self.shape_sum: dict[int, np.ndarray] = {}
        self.shape_count: dict[int, int] = {}

    def push(self, frame) -> list[Smoothed]:
        params = _params(frame)
        rois = (np.stack([np.asarray(f.roi_box, np.float64) for f in frame.faces]) if frame.faces
                else np.zeros((0, 4)))
        img = self.to_image(params, rois) if len(params) else params
        for face, p in zip(frame.faces, img):
            self.samples.setdefault(face.track_id, {})[frame.index] = p
            self.shape_sum[face.track_id] = self.shape_sum.get(face.track_id, 0) + p[SHAPE]
            self.shape_count[face.track_id] = self.shape_count.get(face.track_id, 0) + 1
        self.pending.append((frame, rois))
        ready = []
        while self.pending and self.pending[0][0].index <= frame.index - self.delay:
            ready.append(self._emit(*self.pending.popleft()))
        return ready

    def flush(self) -> list[Smoothed]:
        ready = [self._emit(*item) for item in self.pending]
        self.pending.clear()
        return ready

    def _emit(self, frame, rois: np.ndarray) -> Smoothed:
        t, r = frame.index, self.delay
        out = np.zeros((len(frame.faces), NUM_PARAMS))
        for i, face in enumerate(frame.faces):
            hist = self.samples[face.track_id]
            idx = np.array([k for k in hist if abs(k - t) <= r])
            w = gaussian_weights(idx - t, self.config.offline_sigma)
            window = np.stack([hist[k] for k in idx])
            out[i] = w @ window
            if self.config.shape == "mean":
                out[i, SHAPE] = self.shape_sum[face.track_id] / self.shape_count[face.track_id]
            else:
                out[i, SHAPE] = hist[t][SHAPE]
        # forget what no later frame's window reaches
        oldest = self.pending[0][0].index if self.pending else t + 1
        for tid in list(self.samples):
            hist = self.samples[tid]
            for k in [k for k in hist if k < oldest - r]:
                del hist[k]
            if not hist:
                del self.samples[tid], self.shape_sum[tid], self.shape_count[tid]
        params = self.to_crop(out, rois) if len(out) else out
        return Smoothed(frame, params.astype(np.float32))


def make_smoother(config: SmoothingConfig, size: int = 120,
                  convention: CropConvention = CROP_OFFSET_V2) -> Smoother:
    """The smoother of ``config.mode``."""
    cls = {"off": Smoother, "causal": CausalSmoother, "offline": OfflineSmoother}[config.mode]
    return cls(config, size, convention)
