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
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ..batch.naming import output_stems, rename_reason, summary_name
from ..batch.summary import write_summary_file
from ..errors import UserError
from ..geometry.roi import landmark_boxes
from ..io.outputs import OutputError
from ..io.run_folder import RunFolder, fingerprint, input_key, source_state
from .reader import VideoReader, open_camera, open_video
from .smoothing import make_smoother
from .tracker import FaceTracker, TrackedFace, TrackedFrame
from .video_config import VideoConfig
from .video_summary import VideoFailure, VideoRun, VideoSummary
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


def _run_settings(reconstructor, config: VideoConfig, settings: dict | None) -> dict:
    """What identifies a video run in the manifest: ``settings`` (the model), the video config, the detector."""
    return {**(settings or {}), "video": dataclasses.asdict(config),
            "detector": str(getattr(reconstructor.detector, "name", None))}


def reconstruct_video(source, reconstructor, out_dir, outputs: Sequence[str] = (), config: VideoConfig | None = None,
                      force: bool = False, settings: dict | None = None, progress: bool = True,
                      max_frames: int | None = None) -> VideoSummary:
    """Reconstruct every frame of ``source`` (a video path, or an ``int`` camera number) into ``out_dir`` (a
    folder, or an open :class:`~tf2dasl.io.run_folder.RunFolder` that several videos share).

    ``outputs``: any of ``overlay``, ``obj``, ``ply`` (the JSON lines are always written; see
    :mod:`tf2dasl.video.writer`). ``settings``: what else identifies the run for the manifest (the model).
    ``max_frames`` stops after that many frames (a camera otherwise runs until Ctrl-C).
    Raises :class:`~tf2dasl.video.reader.VideoError` when the source cannot be read at all and
    :class:`~tf2dasl.io.outputs.OutputError` when the output folder cannot be used; later problems are in the
    summary (:attr:`VideoSummary.ok`). No ``summary.json``: the run folder's opener writes it
    (:func:`reconstruct_sources`)."""
    config = config or VideoConfig()
    camera = isinstance(source, int) and not isinstance(source, bool)
    reader: VideoReader = open_camera(source) if camera else open_video(source)
    path = Path(f"camera{source}") if camera else Path(source)
    key = f"camera:{source}" if camera else input_key(path)
    summary = VideoSummary(input=reader.name)
    run_settings = _run_settings(reconstructor, config, settings)
    with reader:
        shared = isinstance(out_dir, RunFolder)
        folder = out_dir if shared else RunFolder(out_dir, run_settings)
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
            if not shared:
                folder.close()
    return summary


def _run(reader: VideoReader, rec, folder, summary: VideoSummary, outputs, config: VideoConfig, progress: bool,
         max_frames: int | None) -> None:
    video = VideoReconstructor(rec, config)
    writer = VideoOutputs(folder, summary.stem, outputs, reader.fps, (reader.width, reader.height), config.overlay,
                          rec)

    def write(frames) -> None:
        for f in frames:
            writer.write(f)

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
        summary.stats = dict(video.tracker.stats)
        try:
            summary.files = writer.close()
        except OutputError as exc:
            summary.write_error = summary.write_error or str(exc)
            summary.files = writer.names()
        # what is in the JSON lines, counted by the writer as each line was written (a Ctrl-C between a frame's
        # line and its overlay frame still counts the line)
        summary.frames, summary.last_frame, summary.faces = writer.frames, writer.last_frame, writer.faces
        summary.tracks = len(writer.track_ids)


def reconstruct_sources(sources: Sequence, reconstructor, out_dir, outputs: Sequence[str] = (),
                        config: VideoConfig | None = None, force: bool = False, settings: dict | None = None,
                        progress: bool = True, max_frames: int | None = None) -> VideoRun:
    """:func:`reconstruct_video` for each of ``sources`` (paths, or ints for cameras) in turn, in one run folder:
    a source that cannot be read is a :class:`VideoFailure` (one line) and the others go on; Ctrl-C stops after
    the interrupted one (its summary says ``interrupted``). Returns a :class:`VideoRun`: a
    :class:`VideoSummary` or :class:`VideoFailure` per source attempted.

    ``out_dir``: a folder, opened here (:func:`video_run_folder`), whose ``OUT/summary.json`` is then written
    in every case, in the space the run folder held back (:attr:`VideoRun.summary_file`, or
    :attr:`VideoRun.summary_error`); or an open :class:`~tf2dasl.io.run_folder.RunFolder` that other inputs
    share, whose summary is its opener's to write (:func:`~tf2dasl.batch.summary.write_summary_file`).
    :class:`~tf2dasl.io.outputs.OutputError` when the output folder cannot be used at all."""
    config = config or VideoConfig()
    run = VideoRun()
    shared = isinstance(out_dir, RunFolder)
    folder = out_dir if shared else video_run_folder(out_dir, reconstructor, config, settings)
    try:
        summary_file = None if shared else summary_name(folder)
        try:
            for source in sources:
                try:
                    summary = reconstruct_video(source, reconstructor, folder, outputs, config, force, settings,
                                                progress, max_frames)
                except UserError as exc:  # VideoError, OutputError, DetectorError
                    run.results.append(VideoFailure(f"camera {source}" if isinstance(source, int) else str(source),
                                                    str(exc)))
                    continue
                run.results.append(summary)
                if summary.interrupted:
                    break
        finally:
            if not shared:
                write_summary_file(folder, run, summary_file)
    finally:
        if not shared:
            folder.close()
    return run


def video_run_folder(out_dir, reconstructor, config: VideoConfig, settings: dict | None = None) -> RunFolder:
    """``out_dir`` opened as the run folder of videos reconstructed by ``reconstructor`` with ``config``
    (``settings``: what else identifies the run in the manifest, the model); close it (or use ``with``)."""
    return RunFolder(out_dir, _run_settings(reconstructor, config, settings))
