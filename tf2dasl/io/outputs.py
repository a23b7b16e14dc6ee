"""Writing output files so that a fault never leaves a wrong one: the one module that opens output files.

* **Atomic files** (:func:`write_bytes`, :func:`write_text`, :func:`write_json`, :func:`write_image`,
  :func:`atomic_file`): the content goes to a temporary file in the destination's folder
  (``.<name>.<tag>-<random>.tf2dasl-tmp``), is flushed and ``fsync``-ed, then renamed over the destination and
  the folder is ``fsync``-ed. A reader sees the old file or the complete new one, never a part; a failed write
  removes its temporary file.
* **Temporaries are told apart by their process's tag** (:data:`PROCESS_TAG`, in every temporary name): a run
  folder's manifest records the tag of each run, and :func:`remove_stale_temporaries` removes only temporaries
  of the tags it is given, so a user's ``.notes.tf2dasl-tmp`` is never taken for a killed run's leftover.
* **No clobbering on request**: ``overwrite=False`` puts the file in place with ``link()`` (which refuses an
  existing name) instead of ``rename()``, so a file that appeared meanwhile is never replaced
  (:class:`OutputExistsError`).
* **Checked writers**: images are encoded in memory (``cv2.imencode``) and the result is checked: no silent
  ``cv2.imwrite`` failure.
* **Folders** (:func:`atomic_dir`): a model directory or an export is built under a temporary name and renamed
  into place when complete.
* **Streams** — JSON lines appended record by record, videos encoded frame by frame — are
  :mod:`tf2dasl.io.streams`', over the same temporaries and placing.

Every failure raises :class:`OutputError` (a :class:`~tf2dasl.errors.UserError`): one line naming the file and
the operating system's reason (``No space left on device`` is not a permissions problem).

Writers elsewhere go through these functions (or :mod:`tf2dasl.io.streams`, built on them), so that none can skip
the temporary file, the fsync or the no-clobber check.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import UserError

__all__ = ["OutputError", "OutputExistsError", "write_bytes", "write_text", "write_json", "write_image",
           "atomic_file", "atomic_dir", "temporary_path", "place_file", "is_temporary", "remove_stale_temporaries",
           "reserve_space", "make_folder", "folder_errno", "temporary_tag", "temporary_target", "PROCESS_TAG",
           "FOLDER_ERRNOS"]

#: Suffix of the temporary files and folders this module makes (and may remove: :func:`remove_stale_temporaries`).
TMP_SUFFIX = ".tf2dasl-tmp"
#: Errors that concern the whole destination folder (full, over quota, read-only), not one file: a batch run
#: stops at them instead of failing every later file the same way.
FOLDER_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
#: What to do about an error, by errno (the message always gives the system's own words first).
_HINTS = {
    errno.ENOSPC: "free some space or write to another folder",
    errno.EDQUOT: "free some space or write to another folder",
    errno.EROFS: "write to another folder",
    errno.EACCES: "check the folder's permissions",
    errno.EPERM: "check the folder's permissions",
    errno.ENOENT: "check that the folder exists",
    errno.ENOTDIR: "a file stands where a folder is needed",
    errno.EISDIR: "a folder stands where the file should go",
    errno.EEXIST: "it was not replaced",
    errno.ELOOP: "tf2dasl never writes through a link: remove it or choose another folder",
}


class OutputError(UserError):
    """A file or folder that could not be written: ``path``, the ``errno`` (None when not an OS error) and
    ``reason`` (the system's words); ``str()`` is one line naming both."""

    def __init__(self, path, reason: str, errno_: int | None = None):
        self.path, self.reason, self.errno = str(path), reason, errno_
        hint = _HINTS.get(errno_) if errno_ is not None else None
        super().__init__(f"{path}: cannot write ({reason}{'; ' + hint if hint else ''})")

    @classmethod
    def from_os(cls, path, exc: OSError) -> "OutputError":
        """The error for ``exc`` raised while writing ``path`` (the system's reason, not Python's repr)."""
        reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc)) or type(exc).__name__
        return cls(path, reason, exc.errno)

    @property
    def folder_problem(self) -> bool:
        """True when the whole destination folder is unusable (disk full, quota, read-only): see FOLDER_ERRNOS."""
        return self.errno in FOLDER_ERRNOS


class OutputExistsError(OutputError):
    """``overwrite=False`` and something already has the destination's name (it was left untouched)."""

    def __init__(self, path):
        super().__init__(path, "it already exists", errno.EEXIST)


#: This process's tag, in the name of every temporary it makes (``.<name>.<tag>-<random>.tf2dasl-tmp``): a run
#: folder records it in its manifest, so that a later run removes only what a tf2dasl run left there.
_TAG_BYTES = _RANDOM_BYTES = 4  # random bytes of the tag, and after it (distinct temporaries of one process)
PROCESS_TAG = secrets.token_hex(_TAG_BYTES)
_TMP_NAME = re.compile(rf"^\.(?P<target>.+)\.(?P<tag>[0-9a-f]{{{2 * _TAG_BYTES}}})-[0-9a-f]{{{2 * _RANDOM_BYTES}}}"
                       rf"{re.escape(TMP_SUFFIX)}$")


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{PROCESS_TAG}-{secrets.token_hex(_RANDOM_BYTES)}{TMP_SUFFIX}")


def temporary_path(path) -> Path:
    """A fresh temporary name next to ``path`` (for a writer that needs a path of its own, e.g. a video
    encoder; a file or a folder): finish it with :func:`place_file`. A killed run's leftover is removed by
    :func:`remove_stale_temporaries`."""
    return _tmp_name(Path(path))


def temporary_tag(name: str) -> str | None:
    """The process tag in the name of a temporary file/folder of this module (:data:`PROCESS_TAG`), or None
    when ``name`` is not one (a user's ``.notes.tf2dasl-tmp`` is not)."""
    m = _TMP_NAME.match(name)
    return m["tag"] if m else None


def temporary_target(name: str) -> str | None:
    """The name of the file/folder a temporary of this module becomes once in place (``a.json`` for
    ``.a.json.<tag>-<random>.tf2dasl-tmp``), or None when ``name`` is not such a temporary."""
    m = _TMP_NAME.match(name)
    return m["target"] if m else None


def is_temporary(name: str) -> bool:
    """True for the name of a temporary file/folder of this module (left behind only by a killed process)."""
    return temporary_tag(name) is not None


def remove_stale_temporaries(folder, tags) -> list[Path]:
    """Remove the temporary files and folders that processes of ``tags`` left in ``folder`` (a run folder's
    manifest says which tags wrote there: :class:`tf2dasl.io.run_folder.RunFolder`); anything else, whatever its
    name, stays. Returns what was removed. Do not call while another process writes to the same folder."""
    tags = set(tags)
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(folder):
            if temporary_tag(entry.name) in tags:
                p = Path(entry.path)
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(p)
                    else:
                        p.unlink()
                    removed.append(p)
    return removed


def reserve_space(folder, nbytes: int) -> Path | None:
    """Hold ``nbytes`` of ``folder``'s disk in a temporary file (:func:`is_temporary`: a killed run's is removed
    by the next), to be deleted before the last writes of a run so that a full disk still takes them; None when
    even the reserve does not fit."""
    path = _tmp_name(Path(folder) / ".tf2dasl-reserve")
    try:
        with open(path, "xb") as f:
            f.write(b"\0" * nbytes)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return path


def folder_errno(folder) -> int | None:
    """Whether ``folder`` can take one more block now: None when a block-sized probe file can be written and
    synced there, else the error's ``errno`` (ENOSPC for a full disk). Tells why a writer that does not report
    its own errors (OpenCV's video encoder) wrote a broken file."""
    probe = _tmp_name(Path(folder) / ".tf2dasl-probe")
    try:
        with open(probe, "xb") as f:
            f.write(b"\0" * os.statvfs(folder).f_bsize)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return exc.errno
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return None


def make_folder(folder) -> Path:
    """Create ``folder`` and its parents (nothing when it exists); :class:`OutputError` naming it otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError.from_os(folder, exc) from None
    if not folder.is_dir():
        raise OutputError(folder, "it is not a folder", errno.ENOTDIR)
    return folder


def fsync_dir(folder) -> None:
    """``fsync`` a folder so that renames and new names in it are on disk (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # filesystems without directory fsync
            raise
    finally:
        os.close(fd)


def _place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Give the complete file ``tmp`` the name ``path`` (atomically); ``overwrite=False`` never replaces."""
    if overwrite:
        if path.is_dir():  # rename() would say "Is a directory" or replace an empty folder: refuse plainly
            raise OutputError(path, "a folder has this name", errno.EISDIR)
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails with EEXIST instead of replacing: no window between a check and the rename
    except FileExistsError:
        raise OutputExistsError(path) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(path):  # a filesystem without hard links: check, then rename
            raise OutputExistsError(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def place_file(tmp, path, overwrite: bool = True, fsync: bool = True) -> Path:
    """Put the finished file ``tmp`` (written elsewhere, e.g. at a :func:`temporary_path` or inside a temporary
    folder next to ``path``) in place as ``path``: ``fsync``, rename (or link when ``overwrite=False``, which
    never replaces), ``fsync`` of the folder. ``tmp`` is gone afterwards, also when this fails
    (:class:`OutputError` naming ``path``)."""
    tmp, path = Path(tmp), Path(path)
    try:
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _place(tmp, path, overwrite)
        if fsync:
            fsync_dir(path.parent)
    except OSError as exc:
        raise OutputError.from_os(path, exc) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


@contextlib.contextmanager
def atomic_file(path, overwrite: bool = True, fsync: bool = True) -> Iterator:
    """``with atomic_file(path) as f: f.write(b"...")``: a binary file object on a temporary file in the
    destination's folder, put in place as ``path`` only when the block ends without an exception.

    ``overwrite=False`` refuses an existing ``path`` (:class:`OutputExistsError`, nothing replaced). Any OS
    error (also from ``f.write``) becomes :class:`OutputError` naming ``path``; the temporary file is removed."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        f = open(tmp, "xb")
    except OSError as exc:
        raise OutputError.from_os(path, exc) from None
    placed = False
    try:
        try:
            with f:
                yield f
                f.flush()
                if fsync:
                    os.fsync(f.fileno())
            _place(tmp, path, overwrite)
            placed = True
            if fsync:
                fsync_dir(path.parent)
        except OSError as exc:
            raise OutputError.from_os(path, exc) from None
    finally:
        if not placed:
            with contextlib.suppress(OSError):
                tmp.unlink()


def write_bytes(path, data: bytes, overwrite: bool = True, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`); returns ``path`` as a Path."""
    with atomic_file(path, overwrite=overwrite, fsync=fsync) as f:
        f.write(data)
    return Path(path)


def write_text(path, text: str, overwrite: bool = True, fsync: bool = True) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"), overwrite=overwrite, fsync=fsync)


def write_json(path, obj, indent: int | None = None, overwrite: bool = True, fsync: bool = True) -> Path:
    """Write ``obj`` as JSON (one trailing newline) to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n", overwrite=overwrite, fsync=fsync)


def encode_image(path, image_bgr, params: tuple = ()) -> bytes:
    """``image_bgr`` encoded in the format of ``path``'s extension (``.png``, ``.jpg``, ...) by
    ``cv2.imencode``; :class:`OutputError` when OpenCV cannot (unknown extension, unsupported image)."""
    ext = Path(path).suffix.lower()
    if not ext:
        raise OutputError(path, "no file extension to choose the image format from")
    try:
        ok, buf = cv2.imencode(ext, np.asarray(image_bgr), list(params))
    except cv2.error as exc:
        msg = str(exc).strip().splitlines()
        raise OutputError(path, f"OpenCV cannot encode it as {ext}: {msg[-1] if msg else exc}") from None
    if not ok:
        raise OutputError(path, f"OpenCV cannot encode it as {ext}")
    return buf.tobytes()


def write_image(path, image_bgr, params: tuple = (), overwrite: bool = True, fsync: bool = True) -> Path:
    """Encode ``image_bgr`` (``(H, W, 3)`` uint8 BGR, or grey) by ``path``'s extension and write it atomically."""
    return write_bytes(path, encode_image(path, image_bgr, params), overwrite=overwrite, fsync=fsync)


@contextlib.contextmanager
def atomic_dir(path, replace: bool = False, fsync: bool = True) -> Iterator[Path]:
    """``with atomic_dir(out) as tmp: ...write into tmp...``: a folder built under a temporary name next to
    ``path`` and renamed to ``path`` when the block ends without an exception (removed otherwise).

    An existing ``path`` is an :class:`OutputExistsError` unless ``replace``: then the old folder is moved
    aside, the new one renamed in, and the old one deleted (a crash between the two renames leaves the old one
    under a temporary name, never a half-written folder under ``path``). With ``fsync`` every file and folder
    written is ``fsync``-ed before the rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(path) and not replace:
            raise OutputExistsError(path)
        tmp = _tmp_name(path)
        tmp.mkdir()
    except OSError as exc:
        raise OutputError.from_os(path, exc) from None
    done = False
    try:
        try:
            yield tmp
        except OSError as exc:  # a writer inside the block: name the folder being made
            raise OutputError.from_os(path, exc) from None
        try:
            if fsync:
                _fsync_tree(tmp)
            old = None
            if os.path.lexists(path):
                if not replace:
                    raise OutputExistsError(path)
                old = _tmp_name(path)
                os.rename(path, old)
            os.rename(tmp, path)
            done = True
            if fsync:
                fsync_dir(path.parent)
            if old is not None:
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink()
        except OSError as exc:
            raise OutputError.from_os(path, exc) from None
    finally:
        if not done:
            shutil.rmtree(tmp, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(folder)
