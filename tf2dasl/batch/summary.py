"""What a batch run over photos did: :class:`Summary` (counts, failures, renames, skipped, incomplete and
unprocessed inputs; the report lines and ``summary.json``), :class:`RunInterrupted` (Ctrl-C, after the summary
was written) and :func:`write_summary_file`, which puts a run's ``summary.json`` in its output folder."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..io.outputs import OutputError

#: The report names at most this many unprocessed inputs one by one (summary.json lists them all).
NOT_PROCESSED_SHOWN = 10
#: What to try when the detector found no face, by detector name (``Summary.no_face_hint``).
NO_FACE_HINTS = {
    "haar": "try the default detector (drop --detector haar), or give --boxes",
    "blazeface": "try a lower --score-threshold, or give --boxes or --pts",
}


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`reconstruct_paths`, raised after ``summary.json`` was written; ``.summary`` says what
    was done and what is incomplete (a rerun of the same command completes it)."""

    def __init__(self, summary: "Summary"):
        super().__init__("interrupted")
        self.summary = summary


@dataclass
class Summary:
    """What a batch run did: counts; ``failures`` as (path, one-line reason) pairs (the reason names the path);
    ``write_failures`` as (path, output file name, one-line reason naming the file); ``without_faces``: images where no face was found (not
    failures); ``renamed``: (path, output stem, why) of the images whose stem was taken (:func:`output_stems`);
    ``skipped``: inputs an earlier run into the folder completed (kept); ``incomplete``: (path, files written,
    files not written) of the images some of whose outputs are missing; ``not_processed``: inputs never started
    because the run stopped (``stopped`` says why); ``capped``: (path, faces found, faces reconstructed) of the
    images with more faces than the run's bound; ``videos``: the entries of videos the same command
    reconstructed (:class:`tf2dasl.video.VideoRun`); ``detector``: the detector's name (for :meth:`no_face_hint`);
    ``summary_file``: where summary.json went (None when it could not be written: ``summary_error``)."""

    images: int = 0
    faces: int = 0
    without_faces: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    write_failures: list[tuple[str, str, str]] = field(default_factory=list)
    renamed: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    incomplete: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    not_processed: list[str] = field(default_factory=list)
    capped: list[tuple[str, int, int]] = field(default_factory=list)
    videos: list[dict] = field(default_factory=list)
    stopped: str | None = None
    detector: str = ""
    out_dir: str = ""
    summary_file: str | None = None
    summary_error: str | None = None

    @property
    def complete(self) -> bool:
        """True when every input was read and every output written (images without faces included)."""
        return not (self.failures or self.write_failures or self.incomplete or self.not_processed or self.stopped
                    or self.capped or not all(v.get("complete") for v in self.videos))

    def describe(self) -> str:
        failed = {p for p, _ in self.failures} | {p for p, _, _ in self.write_failures}
        incomplete = {p for p, _, _ in self.incomplete} - failed
        done = self.images - len(failed) - len(incomplete) - len(self.not_processed)
        text = (f"{done}/{self.images} images reconstructed, {self.faces} faces, "
                f"{len(self.without_faces)} without faces, {len(failed)} failed")
        if incomplete:
            text += f", {len(incomplete)} incomplete"
        if self.not_processed:
            text += f", {len(self.not_processed)} not processed"
        if self.skipped:
            text += f" ({len(self.skipped)} complete from an earlier run, skipped)"
        return text

    def no_face_hint(self) -> str:
        """What to try for the images without faces, given the detector used."""
        family = "haar" if self.detector == "haar" else "blazeface"
        return NO_FACE_HINTS[family]

    def report_lines(self) -> list[str]:
        """One line per renamed output, image without a face, failure and incomplete or unprocessed input (each
        naming its image once), then how the run stopped and where the summary is."""
        lines = [f"renamed: {p} -> {stem}.json ({why})" for p, stem, why in self.renamed]
        if self.skipped:
            lines.append(f"skipped: {len(self.skipped)} inputs complete from an earlier run into {self.out_dir} "
                         "(listed in summary.json; --force redoes them)")
        lines += [f"no face: {p} ({self.no_face_hint()})" for p in self.without_faces]
        lines += [f"failed: {r if r.startswith(p) else f'{p}: {r}'}" for p, r in self.failures]
        lines += [f"failed: {p}: {r}" for p, _, r in self.write_failures]
        lines += [f"capped: {p}: {found} faces, the first {kept} reconstructed; --max-faces {found} reconstructs "
                  f"all (more memory)" for p, found, kept in self.capped]
        for p, written, missing in self.incomplete:
            what = f"not written: {', '.join(missing)}" if missing else "stopped before all its outputs were written"
            lines.append(f"incomplete: {p} ({what}; a rerun redoes it)")
        if self.not_processed:  # each by name (all of them when summary.json could not be written)
            shown = self.not_processed if self.summary_error else self.not_processed[:NOT_PROCESSED_SHOWN]
            lines += [f"not processed: {p}" for p in shown]
            more = len(self.not_processed) - len(shown)
            lines.append(f"not processed: {len(self.not_processed)} inputs"
                         + (f" ({more} more listed in summary.json)" if more else "")
                         + "; a rerun of the same command does them")
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        if self.summary_error:
            lines.append(f"summary not written: {self.summary_error}")
        return lines

    def to_json(self) -> dict:
        """``summary.json``: counts, ``without_faces``, ``failures`` [{"image", "error"}, and {"image", "file",
        "error"} for each output file that could not be written], ``complete``;
        and only when not empty: ``renamed`` {image: stem}, ``skipped``, ``incomplete`` [{"image", "written",
        "missing"}], ``not_processed``, ``capped`` [{"image", "faces", "reconstructed"}], ``videos``, ``stopped``."""
        failures = [{"image": p, "error": r} for p, r in self.failures]
        failures += [{"image": p, "file": name, "error": r} for p, name, r in self.write_failures]
        out = {"images": self.images, "faces": self.faces, "without_faces": self.without_faces,
               "failures": failures, "complete": self.complete}
        if self.renamed:
            out["renamed"] = {p: stem for p, stem, _ in self.renamed}
        if self.skipped:
            out["skipped"] = self.skipped
        if self.incomplete:
            out["incomplete"] = [{"image": p, "written": w, "missing": m} for p, w, m in self.incomplete]
        if self.not_processed:
            out["not_processed"] = self.not_processed
        if self.capped:
            out["capped"] = [{"image": p, "faces": found, "reconstructed": kept} for p, found, kept in self.capped]
        if self.videos:
            out["videos"] = self.videos
        if self.stopped:
            out["stopped"] = self.stopped
        return out


def write_summary_file(folder, summary, name: str) -> None:
    """``summary.to_json()`` as ``OUT/name`` (:func:`~tf2dasl.batch.naming.summary_name`) through the run folder
    ``folder``, in the space it held back; where it went in ``summary.summary_file``, or the one-line reason it
    could not be written in ``summary.summary_error`` (printed). ``summary``: a :class:`Summary`, or a video run's
    :class:`~tf2dasl.video.VideoRun`."""
    try:
        summary.summary_file = str(folder.write_summary(name, summary.to_json()))
    except OutputError as exc:
        summary.summary_error = str(exc)
