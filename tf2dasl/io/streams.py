"""Outputs written as a stream, with the same guarantees as :mod:`tf2dasl.io.outputs`' atomic files.

* **Lines** (:class:`LineFile`; JSON lines: :class:`JsonLines`): one complete line per record, appended and
  flushed; a failed append is cut back, a line cut by a crash is dropped when the file is opened again, and a
  symbolic link in the file's place is refused (never written through).
* **Encoded videos** (:class:`VideoEncoder`): OpenCV's encoder writes a file of the destination's name inside a
  temporary folder next to it (it picks the container by the extension); the finished file is put in place by
  :func:`~tf2dasl.io.outputs.place_file` (or a run folder's ``place``) only after the finished container was
  opened again and holds every frame written (OpenCV's encoder does not report a full disk: the folder is
  probed for the reason, :func:`~tf2dasl.io.outputs.folder_errno`).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

import cv2

from .json_text import parse_json
from .outputs import OutputError, folder_errno, temporary_path


class VideoEncoder:
    """``enc = VideoEncoder(path, fps, (w, h)); enc.write(frame) ...; tmp = enc.finish()``: OpenCV's
    ``VideoWriter`` encoding into a file named like ``path`` inside a fresh temporary folder next to it (the
    encoder picks the container by the file's extension, so the file keeps its name; a killed run's folder is
    removed by :func:`remove_stale_temporaries`).

    :meth:`finish` closes the file, opens it again to check that its container holds every frame written, and
    returns it (None when no frame was written) for :func:`place_file` or a run folder's ``place``;
    :meth:`discard` removes the temporary folder (call it after placing, or on failure). Frames of another size
    are resized to ``size``. :class:`OutputError` naming ``path`` (+ ``hint``) when OpenCV has no ``fourcc``
    encoder for the format, or the finished file is broken: with the folder's error (``No space left on
    device``) when it cannot take more data, else with what is wrong with the file."""

    def __init__(self, path, fps: float, size: tuple[int, int], fourcc: str = "mp4v", hint: str = ""):
        self.path, self.size = Path(path), (int(size[0]), int(size[1]))
        self.tmp_dir = temporary_path(self.path)
        try:
            self.tmp_dir.mkdir()
        except OSError as exc:
            raise OutputError.from_os(self.path, exc) from None
        self.tmp = self.tmp_dir / self.path.name
        self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*fourcc), float(fps), self.size)
        if not self._writer.isOpened():
            self._writer.release()
            self.discard()
            raise OutputError(self.path, f"OpenCV has no {fourcc!r} encoder for {self.path.suffix or 'this format'} "
                                         f"here{' (' + hint + ')' if hint else ''}")
        self.frames = 0

    def write(self, image) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def finish(self) -> Path | None:
        """Close the encoder: the finished temporary file, or None (folder removed) when no frame was written."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if not self.frames:
            self.discard()
            return None
        problem = self._playback_problem()
        if problem:  # OpenCV's writer reports no error of its own: why did it fail (a full disk)?
            err = folder_errno(self.tmp_dir)
            self.discard()
            if err is not None:
                raise OutputError(self.path, f"{os.strerror(err)}; the encoded video {problem}", err)
            raise OutputError(self.path, f"OpenCV's encoder wrote a broken file: it {problem}")
        return self.tmp

    def _playback_problem(self) -> str | None:
        """Why the finished temporary file is not the video written (None when it opens again in OpenCV and its
        container holds :attr:`frames` frames): an MP4 cut short by a full disk has no index (``moov``) and
        does not open."""
        if not self.tmp.is_file() or self.tmp.stat().st_size == 0:
            return "is empty"
        cap = cv2.VideoCapture(str(self.tmp))
        try:
            if not cap.isOpened():
                return "does not open"
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()
        return None if count == self.frames else f"holds {count} of the {self.frames} frames written"

    def discard(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


#: Opening flags of an append-only file: never through a symbolic link (a link planted with its name would
#: have the run's lines appended to a file outside the folder).
_APPEND_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)


def _os_error(path: Path, exc: OSError) -> OutputError:
    """:class:`OutputError` for ``exc`` on ``path``; a symbolic link (what ``O_NOFOLLOW`` refuses) is named so."""
    if exc.errno == errno.ELOOP:
        return OutputError(path, "it is a symbolic link", errno.ELOOP)
    return OutputError.from_os(path, exc)


class LineFile:
    """An append-only text file of complete lines: ``log = LineFile(path); log.append("a,b")``.

    Opened without following a symbolic link (one in its place is an :class:`OutputError`: "it is a symbolic
    link"; nothing is written through it). Each :meth:`append` writes one complete line with a single ``write``
    and flushes it (``fsync=True`` also syncs it to disk). A write that fails part-way is cut back to the
    previous end, so the file never holds a partial line; a line cut by a crash (no final newline) is dropped
    when the file is next opened. :meth:`lines` returns the complete lines (as bytes)."""

    def __init__(self, path, fsync: bool = False):
        self.path, self.fsync = Path(path), fsync
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            try:
                fd = os.open(self.path, _APPEND_FLAGS, 0o666)
            except OSError as exc:
                raise _os_error(self.path, exc) from None
            try:
                _drop_partial_line(fd)
            except OSError as exc:
                os.close(fd)
                raise OutputError.from_os(self.path, exc) from None
            self._fd = fd
        return self._fd

    def size(self) -> int:
        """Bytes in the file now (opening it, so a symbolic link is refused here too)."""
        return os.lseek(self._open(), 0, os.SEEK_END)

    def append(self, line: str) -> None:
        """Append ``line`` (no newline in it) and a newline; :class:`OutputError` (and the file as before) when
        it cannot."""
        data = (line + "\n").encode("utf-8")
        fd = self._open()
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            n = os.write(fd, data)
            if n != len(data):  # a short write: what did not fit is usually "no space"
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
            raise OutputError.from_os(self.path, exc) from None

    def lines(self) -> list[bytes]:
        """The file's complete lines, in order ([] when there is no file); a symbolic link is an
        :class:`OutputError`, as for writing."""
        try:
            fd = os.open(self.path, _READ_FLAGS)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _os_error(self.path, exc) from None
        with os.fdopen(fd, "rb") as f:
            data = f.read()
        return data.split(b"\n")[:-1]  # the last piece is empty or a partial line

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class JsonLines(LineFile):
    """An append-only JSON-lines file (a :class:`LineFile`): ``log = JsonLines(path); log.append({...})`` writes
    one record a line; :meth:`read` returns the records of every complete line (lines that are not JSON objects
    are skipped)."""

    def append(self, record: dict) -> None:
        """Append ``record`` as one line; :class:`OutputError` (and the file as before) when it cannot."""
        super().append(json.dumps(record, separators=(",", ":")))

    def read(self) -> list[dict]:
        """The records of the file's complete lines, in order ([] when there is no file)."""
        records = []
        for line in self.lines():
            try:
                rec = parse_json(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
        return records


def _drop_partial_line(fd: int) -> None:
    """Cut a file that does not end with a newline back to its last newline (a line cut by a crash)."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return
    if os.pread(fd, 1, size - 1) == b"\n":
        return
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        chunk = os.pread(fd, pos - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            os.ftruncate(fd, start + nl + 1)
            return
        pos = start
    os.ftruncate(fd, 0)
