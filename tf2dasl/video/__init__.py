"""Video: faces tracked through a clip or a camera with stable ids and temporally stable 3D, written as JSON
lines, an overlay video and per-frame meshes.

One job per module: ``reader`` (frames from a file or camera; the one-line errors of unreadable, truncated
and empty videos), ``tracker`` (3DDFA_V2-style tracking: next crop from this frame's landmarks, re-detection,
loss checks, shot cuts, track ids), ``filters`` (Kalman / One-Euro / Gaussian-window maths on numbers),
``smoothing`` (which parameters are filtered how, per track: off, causal, offline), ``writer`` (JSON lines,
overlay video, meshes through the run folder), ``pipeline`` (the loop tying them together, progress) and
``video_summary`` (what a run did, its ``summary.json``); ``config`` holds every setting (YAML-mappable
dataclasses).

It uses the :class:`tf2dasl.reconstruct.Reconstructor` (regression, detection, face records) and ``tf2dasl.io``
(output files) and must not import ``tf2dasl.commands``, ``tf2dasl.training``, ``tf2dasl.evaluate`` or Keras:
the models stay behind the reconstructor. ``tracker``, ``filters`` and ``smoothing`` do no file I/O.
"""
from .pipeline import VideoReconstructor, reconstruct_video  # noqa: F401
from .reader import Frame, VideoError, VideoReader, is_video_path, open_camera, open_video  # noqa: F401
from .tracker import FaceTracker, TrackedFace, TrackedFrame  # noqa: F401
from .video_config import OverlayConfig, SmoothingConfig, TrackingConfig, VideoConfig  # noqa: F401
from .video_summary import VideoFailure, VideoRun, VideoSummary  # noqa: F401

__all__ = ["VideoConfig", "TrackingConfig", "SmoothingConfig", "OverlayConfig", "VideoReconstructor",
           "VideoSummary", "VideoFailure", "VideoRun", "reconstruct_video", "Frame", "VideoError", "VideoReader",
           "is_video_path", "open_camera", "open_video", "FaceTracker", "TrackedFace", "TrackedFrame"]
