"""Expression retargeting driven by a video: one face followed through a clip, its expressions (and head
rotations) applied to a target photo frame by frame, written as an MP4.

The source face is followed as 3DDFA_V2 does: each frame is cropped around the previous frame's landmarks
(:class:`~tf2dasl.reconstruct.Reconstructor` with ``landmarks=``), and the detector runs on the first frame,
every ``redetect_every`` frames (picking the face that overlaps the followed one most: shot cuts and a second
face do not steal the track) and whenever the followed face is lost. Frames come from OpenCV. Expressions are
smoothed with an exponential moving average (``smoothing``) so per-frame regression noise does not flicker.

(The project's video module, ``tf2dasl.video``, was not on main when this was written; its tracker can replace
:func:`follow_face` without changing anything else here.)
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from .edit import EXPRESSION, EditConfig, Retargeter
from .errors import UserError
from .geometry.pose import params_to_sRt

#: file extensions taken as videos
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")


class VideoInputError(UserError):
    """A source video that cannot be read (one line naming it)."""


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class VideoRetargetSummary:
    """What :func:`retarget_video` did: frames read and written, frames where the source face was followed
    (the others repeat the last expression), the output's frame rate and the path written."""

    frames: int = 0
    followed: int = 0
    fps: float = 0.0
    out: str = ""
    lost_frames: list[int] = field(default_factory=list)

    def describe(self) -> str:
        return (f"{self.frames} frames written to {self.out} at {self.fps:.2f} fps; the source face was followed "
                f"in {self.followed} of them")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def read_frames(path, max_frames: int | None = None, start: int = 0) -> tuple[Iterator[np.ndarray], float, int]:
    """``(frames, fps, frame count)`` of a video file read with OpenCV from frame ``start`` on (at most
    ``max_frames``); :class:`VideoInputError` when it cannot be opened or holds no frame there."""
    path = Path(path)
    if not path.is_file():
        raise VideoInputError(f"{path}: video not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoInputError(f"{path}: cannot open it as a video (OpenCV's FFmpeg reads MP4/AVI/MOV/MKV)")
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
    count = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) - start, 0)
    for _ in range(start):  # frame-exact (seeking by CAP_PROP_POS_FRAMES lands on key frames with some codecs)
        if not cap.grab():
            break
    ok, first = cap.read()
    if not ok:
        cap.release()
        raise VideoInputError(f"{path}: holds no readable frame" + (f" from frame {start} on" if start else ""))
    limit = count if max_frames is None else min(count, max_frames) if count > 0 else max_frames

    def frames():
        try:
            n, frame = 0, first
            while frame is not None and (max_frames is None or n < max_frames):
                yield frame
                n += 1
                ok, frame = cap.read()
                if not ok:
                    frame = None
        finally:
            cap.release()

    return frames(), fps, int(limit or 0)


def _plausible(roi: np.ndarray, previous: np.ndarray, min_iou: float, max_scale_change: float) -> bool:
    """A followed face whose new roi still overlaps the crop it came from and did not shrink or grow much (on a
    crop without a face the regressor returns an ever smaller face)."""
    ratio = (roi[2] - roi[0]) / max(previous[2] - previous[0], 1e-6)
    return _iou(roi, previous) >= min_iou and 1 / (1 + max_scale_change) <= ratio <= 1 + max_scale_change


def follow_face(rec, frames: Iterator[np.ndarray], redetect_every: int = 10, min_iou: float = 0.3,
                max_scale_change: float = 0.15) -> Iterator[tuple[np.ndarray, object | None]]:
    """``(frame, face or None)`` for each frame: the largest face of the first frame where one is found, followed
    from frame to frame (module docstring). The face is dropped when its new crop is implausible (``min_iou``,
    ``max_scale_change``) and the detector does not find it, and when a re-detection finds no face at all."""
    face = None
    for i, frame in enumerate(frames):
        followed = None
        if face is not None:
            got = rec(frame, landmarks=np.asarray(face.landmarks_2d)[None])
            if got and _plausible(got[0].roi_box, face.roi_box, min_iou, max_scale_change):
                followed = got[0]
        if face is None or followed is None or i % redetect_every == 0:
            found = rec(frame)
            anchor = followed if followed is not None else face
            if not found:
                face = None
            elif anchor is None:
                face = max(found, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
            else:
                best = max(found, key=lambda f: _iou(f.roi_box, anchor.roi_box))
                if _iou(best.roi_box, anchor.roi_box) >= min_iou:
                    face = best
                elif followed is not None:
                    face = followed  # another face was found; ours is still in its crop
                else:
                    face = max(found, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
        else:
            face = followed
        yield frame, face


def retarget_video(mm, rec, source_video, target_image: np.ndarray, target_face, out_path,
                   with_pose: bool = False, max_frames: int | None = None, start: int = 0, smoothing: float = 0.5,
                   config: EditConfig | None = None, overwrite: bool = False,
                   progress: bool = True) -> VideoRetargetSummary:
    """The target photo animated with the source clip's expressions (and, ``with_pose``, its head rotation
    relative to the first followed frame) from frame ``start`` on, written to ``out_path`` (MP4, the clip's frame rate, the target
    photo's size) through :mod:`tf2dasl.io.outputs` (atomic; ``overwrite=False`` refuses an existing file).

    ``smoothing`` in ``[0, 1)``: the weight of the previous frame in the expression's moving average."""
    from .io.outputs import write_bytes

    out_path = Path(out_path)
    retarget = Retargeter(mm, target_image, target_face, config)
    frames, fps, count = read_frames(source_video, max_frames, start)
    summary = VideoRetargetSummary(fps=fps, out=str(out_path))
    h, w = target_image.shape[:2]
    expression, rotation, first_rotation = None, None, None
    with tempfile.TemporaryDirectory(prefix="tf2dasl-retarget-") as tmp:
        tmp_file = Path(tmp) / "clip.mp4"
        writer = cv2.VideoWriter(str(tmp_file), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise UserError(f"{out_path}: OpenCV cannot encode MP4 (mp4v) on this machine")
        try:
            bar = tqdm(follow_face(rec, frames), total=count or None, desc="retarget", unit="frame",
                       disable=not progress)
            for i, (_, face) in enumerate(bar):
                if face is not None:
                    summary.followed += 1
                    e = np.asarray(face.params, np.float32)[EXPRESSION]
                    expression = e if expression is None else smoothing * expression + (1 - smoothing) * e
                    if with_pose:
                        R = params_to_sRt(np.asarray(face.params)[None])[1][0]
                        first_rotation = R if first_rotation is None else first_rotation
                        rotation = first_rotation.T @ R  # the head's turn since the first frame, object frame
                else:
                    summary.lost_frames.append(i)
                if expression is None:  # no face yet: the target as it is
                    out = target_image
                else:
                    out = retarget(expression, rotation)
                writer.write(np.ascontiguousarray(out))
                summary.frames += 1
        finally:
            writer.release()
        if summary.frames == 0:
            raise VideoInputError(f"{source_video}: no frame was read")
        write_bytes(out_path, tmp_file.read_bytes(), overwrite=overwrite)
    return summary
