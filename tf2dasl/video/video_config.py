"""The settings of video reconstruction, as dataclasses a YAML file maps onto (``tf2dasl.io.yaml_config.load_config``).

    tracking:                 # tf2dasl.video.tracker
      redetect_every: 10
    smoothing:                # tf2dasl.video.smoothing
      mode: causal
    overlay:                  # tf2dasl.video.writer
      mesh: false

``tf2dasl reconstruct clip.mp4 --video-config my.yaml --set smoothing.mode=offline`` reads one; every field
is documented here and nowhere else. Frames are the time unit of every filter (a frame rate does not change
what the numbers mean; a frame the camera dropped counts as a gap of two).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..reconstruct import DEFAULT_MAX_FACES

SMOOTH_MODES = ("off", "causal", "offline")
CAUSAL_FILTERS = ("kalman", "one_euro")


@dataclass
class TrackingConfig:
    """How faces are followed from frame to frame (3DDFA_V2's way: the crop of frame t+1 is the roi of frame t's
    landmarks), when the whole frame is searched again and when a track counts as lost.

    redetect_every: run the detector on the whole frame every this many frames (new faces, confirmation of the
        tracks); it also runs on the first frame, after a shot cut and on any frame where a track was lost.
    crops_per_frame: crops regressed per tracked face and frame: 1 as 3DDFA_V2 (crop from the previous landmarks);
        2 crops again from this frame's landmarks and regresses once more (twice the cost, follows fast motion
        better).
    min_fit_iou: a track is lost when the roi of its new landmarks overlaps the crop they came from less than
        this (IoU): the face left the crop.
    max_scale_change: a track is lost when the roi of its new landmarks is smaller or larger than the crop they
        came from by more than this share (``1 / (1 + x)`` to ``1 + x``): on a crop that holds no face the
        regressor returns an ever smaller face, and the roi collapses by ~15 % a frame. On hamilton_clip.mp4's
        tracked faces the ratio stays within 0.95-1.07 (1st-99th percentile).
    min_roi_side: a track is lost when its roi side falls below this many pixels (collapse).
    max_outside: a track is lost when more than this share of its 68 landmarks lie outside the frame.
    shot_cut: Bhattacharyya distance between the hue/saturation histograms of consecutive frames above which a
        shot cut is declared: every track ends (faces after the cut get new ids). Measured on hamilton_clip.mp4:
        0.42-0.53 at its 3 cuts, <= 0.09 elsewhere. ``1.0`` never cuts.
    match_iou: a detection continues a track when their rois overlap at least this much (IoU, one-to-one).
    max_missed: at re-detection frames a track that no detection continues is checked by the detector on its own
        crop; when that fails too this many re-detections in a row, the track ends.
    verify_score: the score the detector must give the face on the track's own crop for that check to pass.
    duplicate_iou: two tracks whose rois overlap more than this follow one face: the younger one ends.
    reattach_frames, reattach_iou: a face found up to ``reattach_frames`` frames after its track was lost (not
        across a shot cut), whose roi overlaps the track's last roi at least ``reattach_iou``, is clearly the same
        track and keeps its id; any other face gets a new id.
    max_faces: track at most this many faces (the highest-scoring new detections first): by default
        :data:`tf2dasl.reconstruct.DEFAULT_MAX_FACES`, the photos' bound, so a frame's memory stays bounded;
        null: no limit.
    """

    redetect_every: int = 10
    crops_per_frame: int = 1
    min_fit_iou: float = 0.6
    max_scale_change: float = 0.12
    min_roi_side: float = 24.0
    max_outside: float = 0.5
    shot_cut: float = 0.3
    match_iou: float = 0.3
    max_missed: int = 2
    verify_score: float = 0.5
    duplicate_iou: float = 0.5
    reattach_frames: int = 5
    reattach_iou: float = 0.5
    max_faces: int | None = DEFAULT_MAX_FACES

    def validate(self) -> None:
        if self.redetect_every < 1:
            raise ValueError("tracking.redetect_every must be >= 1 (1: detect on every frame)")
        if self.crops_per_frame not in (1, 2):
            raise ValueError("tracking.crops_per_frame must be 1 or 2")
        for name in ("min_fit_iou", "max_outside", "match_iou", "verify_score", "duplicate_iou", "reattach_iou"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"tracking.{name} must be in [0, 1]")
        if not 0.0 <= self.shot_cut <= 1.0:
            raise ValueError("tracking.shot_cut must be in [0, 1] (1: never)")
        if self.max_scale_change <= 0:
            raise ValueError("tracking.max_scale_change must be > 0")
        if self.max_missed < 1 or self.reattach_frames < 0 or self.min_roi_side < 0:
            raise ValueError("tracking.max_missed must be >= 1, reattach_frames and min_roi_side >= 0")
        if self.max_faces is not None and self.max_faces < 1:
            raise ValueError("tracking.max_faces must be >= 1 or null")


@dataclass
class SmoothingConfig:
    """Temporal smoothing of each track's 62 parameters (:mod:`tf2dasl.video.smoothing`).

    The pose (the 12 numbers of ``[s R | t]``) is first moved out of its crop into the image frame
    (:func:`tf2dasl.geometry.camera.reframe_params`): crops move with the face, the image does not.

    mode: ``off`` (the regressor's parameters as they are), ``causal`` (each frame from itself and the past only:
        live use, no delay) or ``offline`` (a centred window that looks ``ceil(3 * offline_sigma)`` frames
        ahead: files, output delayed by that many frames).
    causal_filter: ``kalman`` (constant-velocity Kalman filter per number) or ``one_euro`` (One-Euro filter).
    pose_noise, expression_noise: Kalman process noise over measurement noise (per frame, both in the same
        units, so one number sets the filter): smaller smooths more and lags more when the motion changes.
    pose_adaptation: makes the pose filter adaptive (0: fixed gains): while the innovations of the 12 pose
        numbers (measurement minus prediction) keep one sign over the last frames, as when the filter lags a change
        of motion, the process noise grows up to ``1 + pose_adaptation`` times ``pose_noise``, so the filter
        catches up; white innovations (noise) leave it at ``pose_noise`` (:class:`~tf2dasl.video.filters.KalmanCV`).
        The test needs no noise level: it holds for any regressor and any video.
    one_euro_min_cutoff, one_euro_beta, one_euro_d_cutoff: the One-Euro filter's cutoff (cycles per frame) at
        rest, its growth with speed (per unit of the number's speed relative to the face scale), and the cutoff
        of the speed estimate.

    The defaults were chosen on clips of HELEN faces (``python benchmarks/video_stability.py --folder helen_train
    --clips 60 --grid --motion fast``, then ``--motion smooth``), held out of the AFW clips that
    docs/video_smoothing.md reports. The rule, fixed before the first scan: NME <= x1.02 and jitter <= x0.65 of
    ``off`` on fast motion, then the least jitter on smooth motion. Adaptive Kalman ``pose_noise`` 0.05,
    ``pose_adaptation`` 100: jitter x0.645 at NME x1.018 on fast motion, x0.538 at x1.002 on smooth; fixed gains
    ``pose_noise`` 0.5 (the best fixed-gain setting by the same rule): x0.593 / x1.019 fast, x0.556 / x1.000
    smooth; the former default (fixed, 0.2) lags on fast motion (x0.539 / x1.056). No One-Euro setting of the scan
    meets jitter <= x0.7 with NME <= x1.03 on fast motion. ``expression_noise`` 0.03-1.0 moves the fast-motion
    jitter ratio by -0.004 to +0.014 and the NME not at all (the clips move the face rigidly: its expression never
    changes, so its lag cannot be measured there). Offline
    sigma 1.0: x0.349 / x1.012 fast, x0.278 / x1.002 smooth.
    shape: ``mean`` averages the identity (40 shape numbers) over the track so far (a person's face does not
        change), ``raw`` keeps each frame's.
    offline_sigma: the offline window's Gaussian sigma in frames (pose and expression alike).
    """

    mode: str = "causal"
    causal_filter: str = "kalman"
    pose_noise: float = 0.05
    expression_noise: float = 0.1
    pose_adaptation: float = 100.0
    one_euro_min_cutoff: float = 0.3
    one_euro_beta: float = 5.0
    one_euro_d_cutoff: float = 0.1
    shape: str = "mean"
    offline_sigma: float = 1.0

    def validate(self) -> None:
        if self.mode not in SMOOTH_MODES:
            raise ValueError(f"smoothing.mode must be one of {', '.join(SMOOTH_MODES)}, got {self.mode!r}")
        if self.causal_filter not in CAUSAL_FILTERS:
            raise ValueError(f"smoothing.causal_filter must be one of {', '.join(CAUSAL_FILTERS)}")
        if self.shape not in ("mean", "raw"):
            raise ValueError("smoothing.shape must be mean or raw")
        for name in ("pose_noise", "expression_noise", "one_euro_min_cutoff", "one_euro_d_cutoff", "offline_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"smoothing.{name} must be > 0")
        for name in ("pose_adaptation", "one_euro_beta"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"smoothing.{name} must be >= 0")


@dataclass
class OverlayConfig:
    """The overlay video (``--overlay``): what is drawn on each frame (:mod:`tf2dasl.video.writer`).

    mesh: draw the shaded dense mesh under the landmarks (as the photo overlay does; ~10-20 ms per face on the
        2-core machine, so off by default for video); landmarks, pose axes, box and track id are always drawn.
    fourcc: the MP4 codec's four-character code for OpenCV's writer (``mp4v``: MPEG-4 part 2, in every
        OpenCV build).
    """

    mesh: bool = False
    fourcc: str = "mp4v"

    def validate(self) -> None:
        if len(self.fourcc) != 4:
            raise ValueError(f"overlay.fourcc must be 4 characters, got {self.fourcc!r}")


@dataclass
class VideoConfig:
    """All the settings of :func:`tf2dasl.video.reconstruct_video` (see each section's class)."""

    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    overlay: OverlayConfig = field(default_factory=OverlayConfig)

    def validate(self) -> None:
        self.tracking.validate()
        self.smoothing.validate()
        self.overlay.validate()
