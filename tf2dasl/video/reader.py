"""Frames in: a video file (any container and codec OpenCV's FFmpeg reads) or a camera, as :class:`Frame`\\ s.

    with open_video("clip.mp4") as video:        # or open_camera(0)
        for frame in video:                      # Frame(index, time, image (H, W, 3) uint8 BGR)
            ...
        video.problem                            # None, or why the stream stopped before its end

Problems a user can cause are one line (:class:`VideoError`): a missing file, a file OpenCV cannot open as a
video (not a video, a truncated MP4 whose index is gone), a video with no frame, a camera that cannot be opened.
A stream that breaks part-way (a truncated or corrupt file) is not an exception: iteration stops after the
last good frame and :attr:`VideoReader.problem` says where, so everything up to there is kept.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..quiet import native_stderr_hidden

#: File extensions ``tf2dasl reconstruct`` treats as videos (anything else is read as an image).
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                              ".3gp", ".ts", ".mts", ".m2ts", ".ogv"})
#: A file whose stream ends before this share of the frames its header announces counts as broken part-way
#: (containers estimate their frame count from the duration, so a few frames short is normal).
COMPLETE_SHARE = 0.98
#: Frames fewer than announced that are never a problem (estimates round; some files drop a last frame).
FRAME_COUNT_SLACK = 2
#: FFmpeg's AV_LOG_QUIET, for ``OPENCV_FFMPEG_LOGLEVEL``.
FFMPEG_QUIET = "-8"
# FFmpeg reads its log level when OpenCV first uses it (a reader or a writer): quiet from the start
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", FFMPEG_QUIET)
#: Frame rate assumed when a camera or file reports none (timestamps of files then come from it).
DEFAULT_FPS = 30.0


class VideoError(UserError):
    """A video or camera that cannot be read at all; the message names it and what to check."""


def is_video_path(path) -> bool:
    """True for a file name with a video extension (:data:`VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class Frame:
    """One decoded frame: ``index`` (0-based, in reading order), ``time`` seconds since the first frame (the
    file's presentation time, a camera's arrival time), ``image`` ``(H, W, 3)`` uint8 BGR."""

    index: int
    time: float
    image: np.ndarray


class VideoReader:
    """Frames of one opened source; iterate once. ``name`` (the path or ``camera N``), ``fps``, ``width``,
    ``height``, ``frame_count`` (announced by the container; 0 for cameras and when unknown), ``frames_read``
    and ``problem`` (see the module docstring). Use :func:`open_video` / :func:`open_camera`."""

    def __init__(self, capture: cv2.VideoCapture, name: str, is_camera: bool):
        self._cap, self.name, self.is_camera = capture, name, is_camera
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if np.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS
        self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        count = 0 if is_camera else int(max(0.0, capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0))
        self.frame_count = count
        self.frames_read = 0
        self.problem: str | None = None
        self._first = self._read()  # a source that yields no frame at all is an error now, not an empty output
        if self._first is None:
            self.close()
            if is_camera:
                raise VideoError(f"{name}: opened but gives no frames (in use by another program, or not a "
                                 "camera); check --camera N")
            raise VideoError(f"{name}: no frames could be decoded (an empty or damaged video)")
        h, w = self._first.shape[:2]
        self.width, self.height = w, h
        self._t0: float | None = None

    def _read(self) -> np.ndarray | None:
        try:
            ok, image = self._cap.read()
        except cv2.error:
            return None
        if not ok or image is None or image.size == 0:
            return None
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        return np.ascontiguousarray(image, np.uint8)

    def _time(self, index: int) -> float:
        if self.is_camera:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now
            return now - self._t0
        ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
        return ms / 1000.0 if ms > 0 or index == 0 else index / self.fps

    def __iter__(self):
        index = 0
        image, self._first = self._first, None
        while image is not None:
            self.frames_read = index + 1
            yield Frame(index, self._time(index), image)
            index += 1
            image = self._read()
        expected = self.frame_count
        if not self.is_camera and expected and index < COMPLETE_SHARE * expected - FRAME_COUNT_SLACK:
            self.problem = (f"{self.name}: the stream breaks after frame {index - 1} of the {expected} its header "
                            "announces (a truncated or damaged file); the frames before are kept")
        self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _quiet_capture(*args) -> cv2.VideoCapture:
    """``cv2.VideoCapture(*args)`` with OpenCV's and FFmpeg's own messages hidden: our error or
    :attr:`VideoReader.problem` says it once (FFmpeg stays quiet while decoding too, unless the user set
    ``OPENCV_FFMPEG_LOGLEVEL``)."""
    with native_stderr_hidden():
        return cv2.VideoCapture(*args)


def open_video(path) -> VideoReader:
    """Open a video file; :class:`VideoError` when it is missing, not a video OpenCV can read, or has no frame."""
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p}: file not found")
    if p.is_dir():
        raise VideoError(f"{p}: is a folder, not a video file")
    if not os.access(p, os.R_OK):
        raise VideoError(f"{p}: cannot be read (check its permissions)")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: empty file (0 bytes), no frames")
    cap = _quiet_capture(str(p), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{p}: OpenCV cannot read it as a video (not a video, a video without frames, or a "
                         "damaged/truncated file)")
    return VideoReader(cap, str(p), is_camera=False)


def open_camera(index: int) -> VideoReader:
    """Open camera ``index`` (``--camera N``); :class:`VideoError` when it cannot be opened or gives no frame."""
    if int(index) < 0:
        raise VideoError(f"camera {index}: camera numbers start at 0")
    cap = _quiet_capture(int(index))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"camera {index}: cannot be opened (no such camera, no permission, or in use); "
                         "check --camera N")
    return VideoReader(cap, f"camera {index}", is_camera=True)
