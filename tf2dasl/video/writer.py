"""Results out: one JSON line per frame, the overlay video and per-frame meshes, through the run folder.

Files of a video ``clip.mp4`` in ``OUT`` (``<stem>`` = ``clip``, or another name when that one is taken; see
:func:`tf2dasl.video.pipeline.reconstruct_video`):

* ``<stem>.jsonl`` — one line per frame, written and flushed as the frame is done, so a run that stops early
  leaves every finished frame as a valid line (:class:`tf2dasl.io.outputs.JsonLines`)::

      {"frame": 0, "time": 0.0, "detected": true, "cut": false,
       "faces": [{"track_id": 1, "detected": true, "bbox": [...], "score": 0.93, "roi_box": [...],
                  "landmarks_2d": [[x, y] x 68], "landmarks_3d": [[x, y, z] x 68],
                  "pose": {"yaw": ..., "pitch": ..., "roll": ...}, "params": [62 numbers]}]}

  (``docs/output_format.md``); recorded in the run folder's manifest when the video ends;
* ``<stem>_overlay.mp4`` (``--overlay``) — every frame with each face's 68 landmarks, pose axes, box and track
  id (and the shaded mesh with ``overlay.mesh``), same size and frame rate; encoded to a temporary file and
  renamed into place when the video ends (an MP4 is only readable once closed);
* ``<stem>_meshes/<stem>_<frame>_<track>.obj|.ply`` (``--obj``/``--ply``) — each face's dense mesh with vertex
  colours, one file per frame and track, each written atomically.

Owns drawing onto frames and the encoders; no tracking, no smoothing, no model calls beyond the dense mesh.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..io.mesh import encode_obj, encode_ply, sample_vertex_colors
from ..io.outputs import OutputError
from ..io.streams import JsonLines, VideoEncoder
from ..render import draw, render_shaded
from .video_config import OverlayConfig

#: BGR colours of track ids (cycled): tracks stay the same colour through the video.
TRACK_COLORS = ((80, 255, 80), (255, 160, 60), (60, 200, 255), (255, 80, 220), (80, 80, 255), (220, 220, 60))


def frame_record(frame) -> dict:
    """The JSON line of one frame (:class:`tf2dasl.video.tracker.TrackedFrame`)."""
    return {"frame": int(frame.index), "time": round(float(frame.time), 4), "detected": bool(frame.detected),
            "cut": bool(frame.cut), "faces": [f.to_json() for f in frame.faces]}


def draw_frame(image: np.ndarray, faces: Sequence, triangles: np.ndarray | None = None) -> np.ndarray:
    """The overlay of one frame: the shaded mesh when ``triangles`` are given (faces need ``face.vertices``),
    then per face its landmarks and pose axes (:mod:`tf2dasl.render.draw`), box and ``#track_id`` label."""
    out = image.copy()
    if triangles is not None and faces:
        out = render_shaded(out, [f.face.vertices for f in faces], triangles)
    t = max(1, int(round(max(image.shape[:2]) / 600)))
    for f in faces:
        color = TRACK_COLORS[(f.track_id - 1) % len(TRACK_COLORS)]
        out = draw.draw_landmarks(out, f.face.landmarks_2d, color)
        out = draw.draw_pose_axes(out, f.face)
        x0, y0, x1, y1 = (int(round(float(v))) for v in f.face.roi_box)
        cv2.rectangle(out, (x0, y0), (x1, y1), color, t, cv2.LINE_AA)
        label = f"#{f.track_id}"
        cv2.putText(out, label, (x0 + 2, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * t, color, t,
                    cv2.LINE_AA)
    return out


class OverlayVideo:
    """``<stem>_overlay.mp4``: frames encoded into a temporary file next to it
    (:class:`~tf2dasl.io.outputs.VideoEncoder`), put in place through the run folder by :meth:`close`;
    :class:`OutputError` when OpenCV cannot open an encoder."""

    def __init__(self, folder, name: str, fps: float, size: tuple[int, int], config: OverlayConfig):
        self.folder, self.name = folder, name
        self.encoder = VideoEncoder(folder.path / name, fps, size, config.fourcc,
                                    hint="set overlay.fourcc in the video config")

    def write(self, image: np.ndarray) -> None:
        self.encoder.write(image)

    def close(self) -> Path | None:
        """Finish the file and put it in place (None and nothing written when no frame was)."""
        if self.encoder is None:
            return None
        encoder, self.encoder = self.encoder, None
        try:
            tmp = encoder.finish()
            return None if tmp is None else self.folder.place(self.name, tmp)
        finally:
            encoder.discard()


class VideoOutputs:
    """The files of one video (module docstring): :meth:`write` one finished frame, :meth:`close` at the end
    (also after an error or Ctrl-C: what was written is kept). ``names()`` lists the files written."""

    def __init__(self, folder, stem: str, outputs: Sequence[str], fps: float, size: tuple[int, int],
                 config: OverlayConfig, reconstructor=None):
        self.folder, self.stem, self.outputs, self.config = folder, stem, set(outputs), config
        self.rec = reconstructor
        mm = getattr(reconstructor, "mm", None)
        self.triangles = mm.triangles if mm is not None and mm.is_dense else None
        self.jsonl_name = f"{stem}.jsonl"
        jsonl = folder.path / self.jsonl_name
        if os.path.lexists(jsonl):  # tf2dasl's own from an earlier run (the stem was chosen so): start it afresh
            try:
                jsonl.unlink()
            except OSError as exc:
                raise OutputError.from_os(jsonl, exc) from None
        self.lines = JsonLines(jsonl)
        self.overlay = None
        if "overlay" in self.outputs:
            self.overlay = OverlayVideo(folder, f"{stem}_overlay.mp4", fps, size, config)
        self.meshes = [o for o in ("obj", "ply") if o in self.outputs] if self.triangles is not None else []
        self.mesh_dir = f"{stem}_meshes"
        if self.meshes:
            folder.make_subfolder(self.mesh_dir)  # never a link to a folder elsewhere
        self.frames, self.faces = 0, 0  # the JSON lines written, and their faces
        self.last_frame: int | None = None  # the index of the last frame whose line is written
        self.track_ids: set[int] = set()
        self.mesh_files = 0
        self._written: list[str] = []

    def write(self, frame) -> None:
        """Write one frame's JSON line, overlay frame and meshes (:class:`~tf2dasl.video.tracker.TrackedFrame`)."""
        need_vertices = self.meshes or (self.overlay is not None and self.config.mesh and self.triangles is not None)
        if need_vertices and frame.faces:
            self.rec.add_vertices([f.face for f in frame.faces])
        self.lines.append(frame_record(frame))
        self.frames, self.last_frame, self.faces = self.frames + 1, int(frame.index), self.faces + len(frame.faces)
        self.track_ids.update(f.track_id for f in frame.faces)
        if self.overlay is not None:
            tri = self.triangles if self.config.mesh else None
            self.overlay.write(draw_frame(frame.image, frame.faces, tri))
        if self.meshes and frame.faces:
            self._write_meshes(frame)

    def _write_meshes(self, frame) -> None:
        encoders = {"obj": encode_obj, "ply": encode_ply}
        for f in frame.faces:
            v = f.face.vertices
            rgb = sample_vertex_colors(frame.image, v)
            for ext in self.meshes:
                name = f"{self.mesh_dir}/{self.stem}_{frame.index:06d}_{f.track_id}.{ext}"
                self.folder.write(name, encoders[ext](v, self.triangles, rgb))
                self._written.append(name)
                self.mesh_files += 1

    def close(self) -> list[str]:
        """Finish every file; returns the names written (relative to ``OUT``). Raises the first
        :class:`OutputError` after closing everything."""
        error = None
        self.lines.close()
        if self.frames:
            try:
                self.folder.adopt(self.jsonl_name)
                self._written.append(self.jsonl_name)
            except OutputError as exc:
                error = exc
        if self.overlay is not None:
            try:
                if self.overlay.close() is not None:
                    self._written.append(self.overlay.name)
            except OutputError as exc:
                error = error or exc
        if error is not None:
            raise error
        return list(self._written)

    def names(self) -> list[str]:
        return list(self._written)


def read_jsonl(path) -> list[dict]:
    """The frame records of a ``<stem>.jsonl`` (every complete line; for tests and tools)."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out
