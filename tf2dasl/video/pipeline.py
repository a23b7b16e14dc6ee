"""A video end to end: frames → tracked faces → smoothed parameters → JSON lines, overlay video, meshes.

Live use (no files; frames from anywhere)::

    video = VideoReconstructor(make_reconstructor("models/mb05"), VideoConfig())
    for frame in open_camera(0):
        for done in video.push(frame.image, frame.index, frame.time):   # offline smoothing: delayed frames
            done.faces[0].track_id, done.faces[0].face.landmarks_2d, done.faces[0].face.pose

Files (what ``tf2dasl reconstruct clip.mp4 --out OUT`` runs)::

    summary = reconstruct_video("clip.mp4", rec, "OUT", outputs=["overlay"], config=VideoConfig())

A stream that breaks part-way keeps every frame decoded before (``summary.problem`` says where); Ctrl-C stops
after writing the frames done so far (``summary.interrupted``); files go through the run folder
(:class:`tf2dasl.io.run_folder.RunFolder`): a file tf2dasl did not write is never replaced, and a rerun skips a
video completed with the same settings unless ``force``.
"""
from __future__ import annotations

import dataclasses
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ..batch.naming import output_stems, rename_reason
from ..errors import UserError
from ..geometry.roi import landmark_boxes
from ..io.outputs import OutputError
from ..io.run_folder import RunFolder, fingerprint, input_key, source_state
from .reader import VideoReader, open_camera, open_video
from .smoothing import make_smoother
from .tracker import FaceTracker, TrackedFace, TrackedFrame
from .video_config import VideoConfig
from .writer import VideoOutputs


class VideoReconstructor:
    """Frames in, :class:`~tf2dasl.video.tracker.TrackedFrame`\\ s out with smoothed faces (``config.smoothing``):
    :meth:`push` a frame, get the frames that are ready (all at once for ``off``/``causal``, ``delay`` frames
    later for ``offline``); :meth:`flush` at the end. No files."""

    def __init__(self, reconstructor, config: VideoConfig | None = None):
        self.rec = reconstructor
        self.config = config or VideoConfig()
        self.tracker = FaceTracker(reconstructor, self.config.tracking)
        self.smoother = make_smoother(self.config.smoothing, reconstructor.size, reconstructor.convention)

    @property
    def delay(self) -> int:
        """Frames between pushing a frame and getting it back."""
        return self.smoother.delay

    def push(self, image: np.ndarray, index: int, time: float = 0.0) -> list[TrackedFrame]:
        frame = self.tracker.step(image, index, time)
        return [smoothed_frame(self.rec, s) for s in self.smoother.push(frame)]

    def flush(self) -> list[TrackedFrame]:
        return [smoothed_frame(self.rec, s) for s in self.smoother.flush()]


def smoothed_frame(rec, smoothed) -> TrackedFrame:
    """The frame of a smoother's :class:`~tf2dasl.video.smoothing.Smoothed` with its faces rebuilt from the
    smoothed parameters (landmarks, their box and the pose follow them; score, roi and ids stay)."""
    frame, params = smoothed.frame, smoothed.params
    if not frame.faces or all(np.array_equal(f.face.params, p) for f, p in zip(frame.faces, params)):
        return frame
    rois = np.stack([f.face.roi_box for f in frame.faces])
    landmarks = rec.landmarks(params, rois)
    faces = rec.make_faces(landmark_boxes(landmarks), np.array([f.face.score for f in frame.faces], np.float32),
                           rois, params, landmarks)
    return dataclasses.replace(frame, faces=[TrackedFace(f.track_id, g, f.detected)
                                             for f, g in zip(frame.faces, faces)])


def smooth_frames(rec, frames, smoothing) -> list[TrackedFrame]:
    """Tracked frames (in order, e.g. recorded from :meth:`FaceTracker.step`) through a fresh smoother of
    ``smoothing`` (:class:`~tf2dasl.video.video_config.SmoothingConfig`): the same frames with smoothed faces."""
    smoother = make_smoother(smoothing, rec.size, rec.convention)
    out = []
    for f in frames:
        out += [smoothed_frame(rec, s) for s in smoother.push(f)]
    return out + [smoothed_frame(rec, s) for s in smoother.flush()]


@dataclass
class VideoSummary:
    """What :func:`reconstruct_video` did with one video or camera."""

    input: str
    stem: str = ""
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    files: list[str] = field(default_factory=list)
    out_dir: str = ""
    seconds: float = 0.0
    problem: str | None = None
    write_error: str | None = None
    interrupted: bool = False
    skipped: bool = False
    renamed: str | None = None
    stats: dict = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        """Every frame of the stream was read and every file written."""
        return self.problem is None and self.write_error is None and not self.interrupted

    def describe(self) -> str:
        if self.skipped:
            return f"{self.input}: complete from an earlier run with the same settings, kept (--force redoes it)"
        files = ", ".join(str(Path(self.out_dir, f)) for f in self.files if "/" not in f)
        meshes = sum("/" in f for f in self.files)
        return (f"{self.input}: {self.frames} frames ({self.frames_per_second:.1f} frames/s), {self.faces} faces in "
                f"{self.tracks} tracks -> {files or 'nothing written'}"
                + (f" + {meshes} meshes" if meshes else ""))

    def report_lines(self) -> list[str]:
        lines = [f"renamed: {self.input} -> {self.stem}.jsonl ({self.renamed})"] if self.renamed else []
        if self.problem:
            lines.append(f"incomplete: {self.problem}")
        if self.write_error:
            lines.append(f"failed: {self.write_error}")
        if self.interrupted:
            lines.append(f"interrupted: {self.input} stopped after frame {self.frames - 1}; the frames before are "
                         "written")
        return lines


def _output_names(stem: str, outputs: Sequence[str]) -> list[str]:
    return [f"{stem}.jsonl"] + ([f"{stem}_overlay.mp4"] if "overlay" in outputs else [])


def _choose_stem(folder, path: Path, key: str, outputs: Sequence[str]) -> tuple[str, str | None]:
    """The output stem of a video: its file stem unless a file that is not tf2dasl's (or another input's earlier
    outputs) holds one of its names; then ``<stem>_<ext>``, ``_2``, ... as for photos. Returns (stem, why)."""
    other = folder.stems_of_other_inputs([key])
    foreign = lambda stem: next((n for n in _output_names(stem, outputs) if folder.foreign(n)), None)  # noqa: E731
    previous = (folder.previous(key) or {}).get("stem")
    (stem,) = output_stems([path], taken=other, blocked=foreign, previous=[previous])
    if stem == path.stem or stem == previous:
        return stem, None
    return stem, rename_reason(path, foreign, other, folder)


def reconstruct_video(source, reconstructor, out_dir, outputs: Sequence[str] = (), config: VideoConfig | None = None,
                      force: bool = False, settings: dict | None = None, progress: bool = True,
                      max_frames: int | None = None) -> VideoSummary:
    """Reconstruct every frame of ``source`` (a video path, or an ``int`` camera number) into ``out_dir``.

    ``outputs``: any of ``overlay``, ``obj``, ``ply`` (the JSON lines are always written; see
    :mod:`tf2dasl.video.writer`). ``settings``: what else identifies the run for the manifest (the model).
    ``max_frames`` stops after that many frames (a camera otherwise runs until Ctrl-C).
    Raises :class:`~tf2dasl.video.reader.VideoError` when the source cannot be read at all and
    :class:`~tf2dasl.io.outputs.OutputError` when the output folder cannot be used; later problems are in the
    summary (:attr:`VideoSummary.ok`)."""
    config = config or VideoConfig()
    camera = isinstance(source, int) and not isinstance(source, bool)
    reader: VideoReader = open_camera(source) if camera else open_video(source)
    name = reader.name
    path = Path(f"camera{source}") if camera else Path(source)
    key = f"camera:{source}" if camera else input_key(path)
    summary = VideoSummary(input=name)
    run_settings = {**(settings or {}), "video": dataclasses.asdict(config),
                    "detector": str(getattr(reconstructor.detector, "name", None))}
    with reader:
        folder = RunFolder(out_dir, run_settings)
        try:
            summary.out_dir = str(folder.path)
            fp = fingerprint({"settings": run_settings, "outputs": sorted(outputs), "max_frames": max_frames})
            src_state = None if camera else source_state(path)
            if not force and not camera and folder.is_complete(key, fp, src_state) is not None:
                summary.skipped = True
                return summary
            summary.stem, summary.renamed = _choose_stem(folder, path, key, outputs)
            folder.begin_input(key, summary.stem)
            _run(reader, reconstructor, folder, summary, outputs, config, progress, max_frames)
            if summary.ok and not camera:
                folder.complete_input(key, summary.stem, summary.files, fp, src_state, frames=summary.frames,
                                      faces=summary.faces)
        finally:
            folder.close()
    return summary


def _run(reader: VideoReader, rec, folder, summary: VideoSummary, outputs, config: VideoConfig, progress: bool,
         max_frames: int | None) -> None:
    video = VideoReconstructor(rec, config)
    writer = VideoOutputs(folder, summary.stem, outputs, reader.fps, (reader.width, reader.height), config.overlay,
                          rec)
    track_ids: set[int] = set()

    def write(frames) -> None:
        for f in frames:
            writer.write(f)
            summary.frames += 1
            summary.faces += len(f.faces)
            track_ids.update(t.track_id for t in f.faces)

    total = reader.frame_count or None
    if max_frames is not None:
        total = min(total or max_frames, max_frames)
    bar = tqdm(total=total, desc=Path(reader.name).name, unit="frame", disable=not progress, dynamic_ncols=True)
    t0 = _time.perf_counter()
    try:
        for frame in reader:
            if max_frames is not None and frame.index >= max_frames:
                break
            write(video.push(frame.image, frame.index, frame.time))
            bar.update(1)
        write(video.flush())
        summary.problem = reader.problem
    except KeyboardInterrupt:
        summary.interrupted = True
        try:
            write(video.flush())  # the frames already tracked (offline smoothing holds a few back)
        except OutputError as exc:
            summary.write_error = str(exc)
    except OutputError as exc:
        summary.write_error = str(exc)
    finally:
        bar.close()
        summary.seconds = _time.perf_counter() - t0
        summary.tracks = len(track_ids)
        summary.stats = dict(video.tracker.stats)
        try:
            summary.files = writer.close()
        except OutputError as exc:
            summary.write_error = summary.write_error or str(exc)
            summary.files = writer.names()


@dataclass
class VideoFailure:
    """A video or camera that could not be read at all (or whose output folder could not be used)."""

    input: str
    reason: str

    def describe(self) -> str:
        return f"failed: {self.reason if self.reason.startswith(self.input) else f'{self.input}: {self.reason}'}"


def reconstruct_sources(sources: Sequence, reconstructor, out_dir, outputs: Sequence[str] = (),
                        config: VideoConfig | None = None, force: bool = False, settings: dict | None = None,
                        progress: bool = True, max_frames: int | None = None) -> list:
    """:func:`reconstruct_video` for each of ``sources`` (paths, or ints for cameras) in turn: a source that cannot
    be read is a :class:`VideoFailure` (one line) and the others go on; Ctrl-C stops after the interrupted one
    (its summary says ``interrupted``). Returns a :class:`VideoSummary` or :class:`VideoFailure` per source
    attempted."""
    results: list = []
    for source in sources:
        try:
            summary = reconstruct_video(source, reconstructor, out_dir, outputs, config, force, settings, progress,
                                        max_frames)
        except UserError as exc:  # VideoError, OutputError (the folder), DetectorError
            results.append(VideoFailure(f"camera {source}" if isinstance(source, int) else str(source), str(exc)))
            continue
        results.append(summary)
        if summary.interrupted:
            break
    return results
