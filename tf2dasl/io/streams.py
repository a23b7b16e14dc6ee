"""Outputs written as a stream, with the same guarantees as :mod:`tf2dasl.io.outputs`' atomic files.

* **JSON lines** (:class:`JsonLines`): one complete line per record, appended and flushed; a failed append is
  cut back, and a line cut by a crash is dropped when the file is opened again.
* **Encoded videos** (:class:`VideoEncoder`): OpenCV's encoder writes a file of the destination's name inside a
  temporary folder next to it (it picks the container by the extension); the finished file is put in place by
  :func:`~tf2dasl.io.outputs.place_file` (or a run folder's ``place``).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

import cv2

from .outputs import OutputError, temporary_path


class VideoEncoder:
    """``enc = VideoEncoder(path, fps, (w, h)); enc.write(frame) ...; tmp = enc.finish()``: OpenCV's
    ``VideoWriter`` encoding into a file named like ``path`` inside a fresh temporary folder next to it (the
    encoder picks the container by the file's extension, so the file keeps its name; a killed run's folder is
    removed by :func:`remove_stale_temporaries`).

    :meth:`finish` closes the file and returns it (None when no frame was written) for :func:`place_file` or a
    run folder's ``place``; :meth:`discard` removes the temporary folder (call it after placing, or on failure).
    Frames of another size are resized to ``size``. :class:`OutputError` naming ``path`` (+ ``hint``) when OpenCV
    has no ``fourcc`` encoder for the format, or wrote nothing."""

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
        if not self.tmp.is_file() or self.tmp.stat().st_size == 0:
            self.discard()
            raise OutputError(self.path, "OpenCV's encoder wrote nothing")
        return self.tmp

    def discard(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


class JsonLines:
    """An append-only JSON-lines file: ``log = JsonLines(path); log.append({...})``.

    Each :meth:`append` writes one complete line with a single ``write`` on a file opened for appending and
    flushes it (``fsync=True`` also syncs it to disk). A write that fails part-way is cut back to the previous
    end, so the file never holds a partial line; a line cut by a crash (no final newline) is dropped when the
    file is next opened. :meth:`read` returns the records of every complete line (lines that are not JSON
    objects are skipped)."""

    def __init__(self, path, fsync: bool = False):
        self.path, self.fsync = Path(path), fsync
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
            except OSError as exc:
                raise OutputError.from_os(self.path, exc) from None
            try:
                _drop_partial_line(fd)
            except OSError as exc:
                os.close(fd)
                raise OutputError.from_os(self.path, exc) from None
            self._fd = fd
        return self._fd

    def append(self, record: dict) -> None:
        """Append ``record`` as one line; :class:`OutputError` (and the file as before) when it cannot."""
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
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

    def read(self) -> list[dict]:
        """The records of the file's complete lines, in order ([] when there is no file)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        records = []
        for line in data.split(b"\n")[:-1]:  # the last piece is empty or a partial line
            try:
                rec = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(rec, dict):
                records.append(rec)
        return records

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "JsonLines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
