"""Faces followed through frames with stable ids, as 3DDFA_V2 tracks them, plus re-detection and loss checks.

Per frame (:meth:`FaceTracker.step`):

1. **shot cut** — the hue/saturation histogram of the frame against the previous one (Bhattacharyya distance
   above ``tracking.shot_cut``): every track ends, faces after the cut get new ids;
2. **track** — each live track's crop is the roi of its previous landmarks (3DDFA_V2's
   ``parse_roi_box_from_landmark``), all tracks regressed in one batch (``crops_per_frame: 2`` crops again from the new
   landmarks). A track is **lost** when its roi collapses (side below ``min_roi_side``, or its size changes by
   more than ``max_scale_change`` in one frame: the regressor's answer on a crop without a face), its new
   landmarks fit their crop badly (the roi of the new landmarks overlaps the crop less than ``min_fit_iou``: the face left
   the crop or jumped in size), or most landmarks lie outside the frame (``max_outside``);
3. **re-detect** — on the first frame, every ``redetect_every`` frames, after a cut and whenever a track was
   lost: the detector's faces are matched one-to-one to the tracks by roi overlap (``match_iou``, Hungarian).
   A track no detection matches is checked by the detector on its own crop (``verify_score``); failing that
   ``max_missed`` re-detections in a row ends it. A detection no track matches starts a track (box roi →
   regression → landmark roi → regression, as for photos); it keeps the id of a track lost up to
   ``reattach_frames`` ago whose last roi it overlaps by ``reattach_iou`` (clearly the same face), else it gets
   a new id. Two tracks on one face (rois overlapping more than ``duplicate_iou``) keep the older.

Uses the :class:`tf2dasl.reconstruct.Reconstructor`'s ``regress``, ``detect``, ``make_faces`` and its detector's
``box_to_faceboxes``; owns no I/O and no smoothing (the next crop comes from the raw landmarks).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ..detect.base import box_iou
from ..geometry.morphable_model import NUM_PARAMS
from ..geometry.roi import crop_image, landmark_boxes, roi_from_bbox, roi_from_landmarks
from .video_config import TrackingConfig

#: Size of the thumbnail whose hue/saturation histogram the shot-cut test compares (pixels, width x height).
CUT_THUMBNAIL = (160, 90)
#: Hue x saturation bins of that histogram.
CUT_BINS = (16, 16)


@dataclass
class TrackedFace:
    """A face in one frame: its ``track_id``, the :class:`tf2dasl.reconstruct.Face` (image pixels; its ``bbox`` is
    the box of its landmarks, its ``score`` that of the detection that last confirmed the track), and whether a
    detection found it in this frame (``detected``; otherwise it was tracked from the previous frame)."""

    track_id: int
    face: object
    detected: bool

    # the fields smoothers and writers read, straight from the face
    @property
    def roi_box(self) -> np.ndarray:
        return self.face.roi_box

    @property
    def params(self) -> np.ndarray:
        return self.face.params

    @property
    def landmarks_3d(self) -> np.ndarray:
        return self.face.landmarks_3d

    def to_json(self) -> dict:
        return {"track_id": self.track_id, "detected": self.detected, **self.face.to_json()}


@dataclass
class TrackedFrame:
    """One frame's result: ``index``, ``time`` (seconds), ``image`` (BGR), ``faces`` (list of
    :class:`TrackedFace`, by track id), ``cut`` (a shot cut was detected before this frame) and ``detected``
    (the detector ran on this frame)."""

    index: int
    time: float
    image: np.ndarray
    faces: list
    cut: bool = False
    detected: bool = False


@dataclass
class _Track:
    id: int
    roi: np.ndarray          # the crop the current landmarks came from
    landmarks: np.ndarray    # (68, 3) image pixels of the last frame
    params: np.ndarray
    score: float
    first: int
    missed: int = 0
    detected: bool = False


@dataclass
class _Lost:
    id: int
    roi: np.ndarray
    frame: int


class ShotCutDetector:
    """A shot cut between consecutive frames: Bhattacharyya distance of their hue/saturation histograms
    (computed on a :data:`CUT_THUMBNAIL` thumbnail) above ``threshold``."""

    def __init__(self, threshold: float):
        self.threshold = float(threshold)
        self.prev = None
        self.last_distance = 0.0

    def __call__(self, image: np.ndarray) -> bool:
        small = cv2.resize(image, CUT_THUMBNAIL, interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, list(CUT_BINS), [0, 180, 0, 256])
        cv2.normalize(hist, hist)
        prev, self.prev = self.prev, hist
        if prev is None:
            return False
        self.last_distance = float(cv2.compareHist(prev, hist, cv2.HISTCMP_BHATTACHARYYA))
        return self.last_distance > self.threshold


def _crop_verifier(detector):
    """The model that scores a face on its own square crop: BlazeFace short range (made for large faces) when
    the detector has it, else the detector itself; None for detectors without scores worth trusting (Haar)."""
    short = getattr(detector, "short", None)
    if short is not None:
        return short
    return detector if getattr(detector, "name", "").startswith("blazeface") else None


class FaceTracker:
    """Stateful: feed frames in order (:meth:`step`); :meth:`reset` forgets every track (a new video)."""

    def __init__(self, reconstructor, config: TrackingConfig | None = None):
        self.rec = reconstructor
        self.config = config or TrackingConfig()
        if reconstructor.detector is None:
            raise ValueError("tracking needs a Reconstructor with a detector")
        self.verifier = _crop_verifier(reconstructor.detector)
        self.reset()

    def reset(self) -> None:
        self.tracks: list[_Track] = []
        self.lost: list[_Lost] = []
        self.next_id = 1
        self.last_detection: int | None = None
        self.cuts = ShotCutDetector(self.config.shot_cut)
        self.stats = {"frames": 0, "detections": 0, "tracks": 0, "cuts": 0, "lost": 0, "reattached": 0}

    # ---------------------------------------------------------------- helpers
    def _lose(self, track: _Track, index: int, why: str) -> None:
        self.lost.append(_Lost(track.id, track.roi, index))
        self.stats["lost"] += 1
        self.stats[f"lost_{why}"] = self.stats.get(f"lost_{why}", 0) + 1

    def _regress(self, image: np.ndarray, rois: np.ndarray, crops: int):
        """``crops`` regressions of every track, each crop from the previous one's landmarks (a 4-channel model runs
        one pass, with the empty landmark map, as on the photo pipeline's box crop)."""
        params, lm = self.rec.regress(image, rois, one_pass=True)
        for _ in range(crops - 1):
            rois = roi_from_landmarks(lm)
            params, lm = self.rec.regress(image, rois, one_pass=True)
        return rois, params, lm

    def _why_lost(self, crop_roi: np.ndarray, lm: np.ndarray, shape: tuple[int, int]) -> str | None:
        """Why a track whose crop ``crop_roi`` gave landmarks ``lm (68, 3)`` is lost (``collapse``, ``fit``,
        ``outside``), or None when it is not."""
        cfg = self.config
        new_roi = roi_from_landmarks(lm[None])[0]
        side = new_roi[2] - new_roi[0]
        ratio = side / max(crop_roi[2] - crop_roi[0], 1e-6)
        if side < cfg.min_roi_side or not 1 / (1 + cfg.max_scale_change) <= ratio <= 1 + cfg.max_scale_change:
            return "collapse"
        if box_iou(crop_roi[None], new_roi[None])[0, 0] < cfg.min_fit_iou:
            return "fit"
        h, w = shape
        x, y = lm[:, 0], lm[:, 1]
        outside = (x < -0.5) | (y < -0.5) | (x > w - 0.5) | (y > h - 0.5)
        return "outside" if outside.mean() > cfg.max_outside else None

    def _verify(self, image: np.ndarray, roi: np.ndarray) -> bool:
        if self.verifier is None:
            return False
        crop = crop_image(image, roi, self.rec.size)
        dets = self.verifier.detect(crop)
        return bool(dets) and dets[0].score >= self.config.verify_score

    def _new_id(self, roi: np.ndarray, index: int) -> int:
        cfg = self.config
        best, best_iou = None, cfg.reattach_iou
        for lost in self.lost:
            if index - lost.frame <= cfg.reattach_frames:
                iou = box_iou(roi[None], lost.roi[None])[0, 0]
                if iou >= best_iou:
                    best, best_iou = lost, iou
        if best is not None:
            self.lost.remove(best)
            self.stats["reattached"] += 1
            return best.id
        self.next_id += 1
        self.stats["tracks"] += 1
        return self.next_id - 1

    # ---------------------------------------------------------------- one frame
    def step(self, image: np.ndarray, index: int, time: float = 0.0) -> TrackedFrame:
        """Track, re-detect and update the faces of frame ``index`` (``(H, W, 3)`` uint8 BGR)."""
        cfg = self.config
        self.stats["frames"] += 1
        cut = self.cuts(image)
        if cut:
            self.stats["cuts"] += 1
            self.tracks, self.lost = [], []  # a new shot: nobody continues, nobody returns
        self.lost = [t for t in self.lost if index - t.frame <= cfg.reattach_frames]

        any_lost = False
        if self.tracks:
            prev_rois = np.stack([roi_from_landmarks(t.landmarks[None])[0] for t in self.tracks])
            rois, params, lm = self._regress(image, prev_rois, cfg.crops_per_frame)
            alive = []
            for t, roi, p, l in zip(self.tracks, rois, params, lm):
                why = self._why_lost(roi, l, image.shape[:2])
                if why:
                    self._lose(t, index, why)
                    any_lost = True
                    continue
                t.roi, t.params, t.landmarks, t.detected = roi, p, l, False
                alive.append(t)
            self.tracks = alive

        due = self.last_detection is None or index - self.last_detection >= cfg.redetect_every
        detected = cut or due or any_lost or not self.tracks
        if detected:
            self._redetect(image, index)
        self._drop_duplicates(index)
        self.tracks.sort(key=lambda t: t.id)
        faces = self.rec.make_faces(
            landmark_boxes(np.stack([t.landmarks for t in self.tracks])) if self.tracks else np.zeros((0, 4)),
            np.array([t.score for t in self.tracks], np.float32),
            np.stack([t.roi for t in self.tracks]) if self.tracks else np.zeros((0, 4), np.float32),
            np.stack([t.params for t in self.tracks]) if self.tracks else np.zeros((0, NUM_PARAMS), np.float32),
            np.stack([t.landmarks for t in self.tracks]) if self.tracks else np.zeros((0, 68, 3), np.float32))
        out = [TrackedFace(t.id, f, t.detected) for t, f in zip(self.tracks, faces)]
        return TrackedFrame(index, time, image, out, cut=cut, detected=detected)

    def _redetect(self, image: np.ndarray, index: int) -> None:
        cfg = self.config
        self.last_detection = index
        self.stats["detections"] += 1
        boxes, scores = self.rec.detect(image)
        det_rois = roi_from_bbox(self.rec.detector.box_to_faceboxes(boxes)) if len(boxes) else np.zeros((0, 4))
        matched_dets: set[int] = set()
        if self.tracks and len(boxes):
            track_rois = roi_from_landmarks(np.stack([t.landmarks for t in self.tracks]))
            iou = box_iou(track_rois, det_rois)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= cfg.match_iou:
                    t = self.tracks[r]
                    t.missed, t.detected, t.score = 0, True, float(scores[c])
                    matched_dets.add(int(c))
        kept = []
        for t in self.tracks:
            if not t.detected:
                if self._verify(image, roi_from_landmarks(t.landmarks[None])[0]):
                    t.missed = 0
                else:
                    t.missed += 1
                    if t.missed >= cfg.max_missed:
                        self._lose(t, index, "missed")
                        continue
            kept.append(t)
        self.tracks = kept
        new = [i for i in np.argsort(-scores) if int(i) not in matched_dets]
        if cfg.max_faces is not None:
            new = new[:max(0, cfg.max_faces - len(self.tracks))]
        if self.tracks and new:  # a detection on a face some track already follows (unmatched by one-to-one)
            cur = np.stack([t.roi for t in self.tracks])
            new = [i for i in new if box_iou(det_rois[i][None], cur)[0].max() <= cfg.duplicate_iou]
        if not new:
            return
        new = np.array(new)
        rois, params, lm = self._regress(image, det_rois[new], 2)
        for i, roi, p, l in zip(new, rois, params, lm):
            tid = self._new_id(roi, index)
            self.tracks.append(_Track(tid, roi, l, p, float(scores[i]), index, detected=True))

    def _drop_duplicates(self, index: int) -> None:
        if len(self.tracks) < 2:
            return
        order = sorted(self.tracks, key=lambda t: (t.first, t.id))  # older first
        kept: list[_Track] = []
        for t in order:
            if kept and box_iou(t.roi[None], np.stack([k.roi for k in kept]))[0].max() > self.config.duplicate_iou:
                continue
            kept.append(t)
        self.tracks = kept
