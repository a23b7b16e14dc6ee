"""What a video run did: :class:`VideoSummary` per video or camera, :class:`VideoFailure` for a source that could
not be read at all, and :class:`VideoRun`, the whole command's results and its ``summary.json``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class VideoSummary:
    """What :func:`~tf2dasl.video.pipeline.reconstruct_video` did with one video or camera: ``frames`` written
    (one JSON line each), the index of the ``last_frame`` written (None before the first), ``files`` written
    (names in ``OUT``), and what went wrong (``problem``: the stream broke; ``write_error``: a file could not be
    written; ``interrupted``: Ctrl-C)."""

    input: str
    stem: str = ""
    frames: int = 0
    last_frame: int | None = None
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
            where = ("before its first frame was written" if self.last_frame is None else
                     f"after frame {self.last_frame}; the frames up to it are written")
            lines.append(f"interrupted: {self.input} stopped {where}")
        return lines

    def to_json(self) -> dict:
        """The video's entry in ``summary.json``: ``input``, ``stem``, ``frames``, ``faces``, ``tracks``,
        ``files``, ``complete``; and only when set: ``skipped``, ``renamed``, ``problem``, ``write_error``,
        ``interrupted`` (with ``last_frame``)."""
        out = {"input": self.input, "stem": self.stem, "frames": self.frames, "faces": self.faces,
               "tracks": self.tracks, "files": list(self.files), "complete": self.ok}
        for key in ("skipped", "renamed", "problem", "write_error"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.interrupted:
            out.update(interrupted=True, last_frame=self.last_frame)
        return out


@dataclass
class VideoFailure:
    """A video or camera that could not be read at all (or whose output folder could not be used)."""

    input: str
    reason: str

    def describe(self) -> str:
        return f"failed: {self.reason if self.reason.startswith(self.input) else f'{self.input}: {self.reason}'}"

    def to_json(self) -> dict:
        return {"input": self.input, "error": self.reason, "complete": False}


@dataclass
class VideoRun:
    """The results of :func:`~tf2dasl.video.pipeline.reconstruct_sources`, one :class:`VideoSummary` or
    :class:`VideoFailure` per source attempted, and where ``summary.json`` went (``summary_file``; None and
    ``summary_error`` when it could not be written, or None when the caller writes the summary)."""

    results: list = field(default_factory=list)
    not_processed: list[str] = field(default_factory=list)
    summary_file: str | None = None
    summary_error: str | None = None

    @property
    def interrupted(self) -> bool:
        return any(getattr(r, "interrupted", False) for r in self.results)

    @property
    def complete(self) -> bool:
        """Every source was read through, every file written, and nothing left unprocessed."""
        return not self.not_processed and all(isinstance(r, VideoSummary) and r.ok for r in self.results)

    def to_json(self) -> dict:
        """``summary.json`` of a run over videos: ``{"videos": [per source], "complete": bool}`` (and
        ``not_processed``: the inputs the command did not reach after Ctrl-C, when any)."""
        out = {"videos": [r.to_json() for r in self.results], "complete": self.complete}
        if self.not_processed:
            out["not_processed"] = self.not_processed
        return out
