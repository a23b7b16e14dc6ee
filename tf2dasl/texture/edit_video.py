"""Expression retargeting driven by a video: one face followed through a clip, its expressions (and head
rotations) applied to a target photo frame by frame, written as an MP4.

Frames come from :func:`tf2dasl.video.open_video` and faces are followed by :class:`tf2dasl.video.FaceTracker`
(3DDFA_V2-style tracking with re-detection, loss checks and shot cuts). The source face is the largest face of
the first frame that has one; it is followed by its track id, and when its track ends (a shot cut, the face
left) the largest face then in view takes over. Expressions are smoothed with an exponential moving average
(``smoothing``) so per-frame regression noise does not flicker.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from ..errors import UserError
from ..geometry.morphable_model import EXPRESSION
from ..geometry.pose import params_to_sRt
from ..io.outputs import OutputExistsError, place_file
from ..io.streams import VideoEncoder
from ..video import FaceTracker, open_video
from .edit import EditConfig, Retargeter


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


def read_frames(path, max_frames: int | None = None, start: int = 0) -> tuple[Iterator[np.ndarray], float, int]:
    """``(frames, fps, frame count)`` of a video file (:func:`tf2dasl.video.open_video`: one line for a missing,
    unreadable or empty video) from frame ``start`` on, at most ``max_frames`` of them."""
    reader = open_video(path)
    total = max(reader.frame_count - start, 0)
    count = total if max_frames is None else min(total, max_frames) if total else max_frames

    def frames():
        try:
            n = 0
            for frame in reader:
                if frame.index < start:
                    continue
                if max_frames is not None and n >= max_frames:
                    break
                n += 1
                yield frame.image
        finally:
            reader.close()

    return frames(), reader.fps, int(count or 0)


def follow_face(rec, frames: Iterator[np.ndarray], config=None) -> Iterator[tuple[np.ndarray, object | None]]:
    """``(frame, face or None)`` for each frame: one face followed by its :class:`tf2dasl.video.FaceTracker`
    track id (module docstring); ``config`` a :class:`tf2dasl.video.TrackingConfig`."""
    tracker = FaceTracker(rec, config)
    track = None
    for i, image in enumerate(frames):
        faces = tracker.step(image, i).faces
        mine = [f for f in faces if f.track_id == track]
        if not mine and faces:  # first face, or ours ended: the largest in view
            mine = [max(faces, key=lambda f: float(np.prod(f.face.bbox[2:] - f.face.bbox[:2])))]
            track = mine[0].track_id
        yield image, (mine[0].face if mine else None)


def retarget_video(mm, rec, source_video, target_image: np.ndarray, target_face, out_path,
                   with_pose: bool = False, max_frames: int | None = None, start: int = 0, smoothing: float = 0.5,
                   config: EditConfig | None = None, overwrite: bool = False,
                   progress: bool = True) -> VideoRetargetSummary:
    """The target photo animated with the source clip's expressions (and, ``with_pose``, its head rotation
    relative to the first followed frame) from frame ``start`` on, written to ``out_path`` (MP4, the clip's frame rate, the target
    photo's size), encoded in a temporary folder next to it and put in place by :mod:`tf2dasl.io.outputs`
    (``overwrite=False`` refuses an existing file).

    ``smoothing`` in ``[0, 1)``: the weight of the previous frame in the expression's moving average."""
    out_path = Path(out_path)
    retarget = Retargeter(mm, target_image, target_face, config)
    frames, fps, count = read_frames(source_video, max_frames, start)
    summary = VideoRetargetSummary(fps=fps, out=str(out_path))
    h, w = target_image.shape[:2]
    expression, rotation, first_rotation = None, None, None
    if out_path.exists() and not overwrite:
        raise OutputExistsError(out_path)
    encoder = VideoEncoder(out_path, fps, (w, h))
    try:
        bar = tqdm(follow_face(rec, frames), total=count or None, desc="retarget", unit="frame", disable=not progress)
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
            out = target_image if expression is None else retarget(expression, rotation)  # no face yet: as is
            encoder.write(np.ascontiguousarray(out))
            summary.frames += 1
        tmp = encoder.finish()
        if tmp is None:
            raise UserError(f"{source_video}: no frame was read")
        place_file(tmp, out_path, overwrite=overwrite)
    finally:
        encoder.discard()
    return summary
