"""An output folder that several runs write into: its manifest, which files are tf2dasl's, and resuming.

``OUT/tf2dasl-manifest.jsonl`` (:data:`MANIFEST_NAME`) is appended to, one JSON object a line
(:class:`tf2dasl.io.streams.JsonLines`: never a partial line, never through a symbolic link), by every run into
``OUT``:

* ``{"type": "run", "format": "tf2dasl-run-manifest", "version": 1, "run": ID, "started": ISO, "tf2dasl": V,
  "temporaries": TAG, "settings": {...}}`` when a run starts, before it makes any temporary file (their names
  hold ``TAG``: a later run removes what a killed one left, and only that);
* ``{"type": "file", "run": ID, "name": "a.json", "bytes": N, "sha256": HEX}`` *before* the file is put in place
  (atomically, :mod:`tf2dasl.io.outputs`): a file in ``OUT`` whose size and hash match one of its records is
  **tf2dasl's** and may be replaced by a later run; anything else in ``OUT`` is the user's and never is;
* ``{"type": "input", "run": ID, "input": PATH, "stem": S, "state": "started" | "complete", ...}`` when an input
  starts and when all its outputs are written. An input is complete for a rerun when its last record says so,
  with the same settings fingerprint, an unchanged input file and every listed file still tf2dasl's.

The manifest says what a folder holds; it is not a lock: two runs into one folder at once are not supported.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import time
from pathlib import Path

from .. import __version__
from .outputs import (PROCESS_TAG, OutputError, make_folder, place_file, remove_stale_temporaries, reserve_space,
                      write_bytes)
from .streams import JsonLines

MANIFEST_NAME = "tf2dasl-manifest.jsonl"
MANIFEST_FORMAT = "tf2dasl-run-manifest"
MANIFEST_VERSION = 1
#: Space held back for the end of a run: a file of this size is made when a run starts and removed just before
#: summary.json is written, so that a disk the outputs filled still takes the summary (and the manifest's last
#: lines). 16 KB holds a summary of a few dozen failures; a larger one may still not fit (it is then printed).
RESERVE_BYTES = 16 * 1024


def fingerprint(obj) -> str:
    """A short stable digest of a JSON-able value (settings, given boxes, ...)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def source_state(path) -> dict | None:
    """What identifies an input file's content cheaply: ``{"bytes", "mtime_ns"}`` (None when unreadable)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def input_key(path) -> str:
    """The manifest's name for an input: its absolute, resolved path."""
    return str(Path(path).resolve())


class RunFolder:
    """``OUT`` for one run: ``folder.write(name, data)`` records and writes a file atomically, replacing only
    tf2dasl's own files; :meth:`is_free` tells whether a name may be (re)written; :meth:`begin_input` /
    :meth:`complete_input` / :meth:`is_complete` track inputs across runs.

    Opening it creates ``OUT``, removes the temporary files that runs recorded in the manifest left when they
    were killed (their ``temporaries`` tag; :func:`remove_stale_temporaries`: nothing else, whatever its name),
    appends this run's record (with this process's tag) to the manifest and sets :data:`RESERVE_BYTES` aside
    (:meth:`release_reserve`); :class:`OutputError` when ``OUT`` cannot be written or its
    ``tf2dasl-manifest.jsonl`` is not one (a symbolic link is not: nothing is written through it)."""

    def __init__(self, folder, settings: dict | None = None):
        self.path = make_folder(folder)
        manifest = self.path / MANIFEST_NAME
        if os.path.isdir(manifest) and not os.path.islink(manifest):
            raise OutputError(manifest, "a folder has the manifest's name; choose another output folder")
        self._log = JsonLines(manifest, fsync=True)  # a record is on disk before the file it names
        records = self._log.read()  # a symbolic link in the manifest's place: OutputError, nothing followed
        if self._log.size() and (not records or records[0].get("format") != MANIFEST_FORMAT):
            self._log.close()
            raise OutputError(manifest, "the file is not a tf2dasl manifest (not written by tf2dasl); "
                                        "choose another output folder")
        if records and records[0].get("version", 0) > MANIFEST_VERSION:
            self._log.close()
            raise OutputError(manifest, f"manifest version {records[0].get('version')} is newer than this tf2dasl "
                                        f"reads ({MANIFEST_VERSION}); upgrade tf2dasl or choose another folder")
        self._hashes: dict[str, set[tuple[int, str]]] = {}
        self._inputs: dict[str, dict] = {}
        tags = set()
        for rec in records:
            kind = rec.get("type")
            if kind == "file" and isinstance(rec.get("name"), str):
                self._hashes.setdefault(rec["name"], set()).add((rec.get("bytes"), rec.get("sha256")))
            elif kind == "input" and isinstance(rec.get("input"), str):
                self._inputs[rec["input"]] = rec
            elif kind == "run" and isinstance(rec.get("temporaries"), str):
                tags.add(rec["temporaries"])
        remove_stale_temporaries(self.path, tags)  # only what runs recorded here left: never a user's item
        self._owned_cache: dict[str, tuple[tuple, bool]] = {}
        self._this_run: dict[str, tuple[int, str]] = {}  # name -> (bytes, sha256) of the files this run recorded
        self.run = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        self.settings = settings or {}
        self.written: list[str] = []  # names written by this run, in order
        # the run's record names its temporaries' tag before the first of them is made (the reserve)
        self._log.append({"type": "run", "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "run": self.run,
                          "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tf2dasl": __version__,
                          "temporaries": PROCESS_TAG, "settings": self.settings})
        self._reserve = reserve_space(self.path, RESERVE_BYTES)

    def release_reserve(self) -> None:
        """Give the reserved space back (before the last writes of a run: summary.json)."""
        if self._reserve is not None:
            with contextlib.suppress(OSError):
                self._reserve.unlink()
            self._reserve = None

    # ----------------------------------------------------------------------------------------- ownership
    def owns(self, name: str) -> bool:
        """True when ``OUT/name`` is a file some tf2dasl run wrote and nobody changed since (size and sha256
        match one of the manifest's records for that name)."""
        known = self._hashes.get(name)
        p = self.path / name
        if not known or p.is_symlink() or not p.is_file():
            return False
        st = p.stat()
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = self._owned_cache.get(name)
        if cached and cached[0] == stamp:
            return cached[1]
        ok = any(size == st.st_size for size, _ in known) and (st.st_size, _sha256_file(p)) in known
        self._owned_cache[name] = (stamp, ok)
        return ok

    def is_free(self, name: str) -> bool:
        """True when ``OUT/name`` does not exist or is tf2dasl's (so writing it loses nothing of the user's)."""
        return not os.path.lexists(self.path / name) or self.owns(name)

    def foreign(self, name: str) -> bool:
        """True when something that is not tf2dasl's has the name ``name`` in ``OUT``."""
        return not self.is_free(name)

    def names(self) -> list[str]:
        """The names in ``OUT`` (files and folders)."""
        try:
            return sorted(os.listdir(self.path))
        except OSError:
            return []

    # -------------------------------------------------------------------------------------------- writing
    def make_subfolder(self, name: str) -> Path:
        """``OUT/name`` as a folder (made when missing) that is inside ``OUT``: a symbolic link in its place is an
        :class:`OutputError`, so no file is ever written through it to a folder elsewhere."""
        target = self.path / name
        if os.path.islink(target):
            raise OutputError(target, "it is a symbolic link", errno.ELOOP)
        return make_folder(target)

    def _target(self, name: str) -> Path:
        """``OUT/name``, its folders checked (:meth:`make_subfolder`) when ``name`` has any."""
        parent = Path(name).parent
        if parent != Path("."):
            self.make_subfolder(str(parent))
        return self.path / name

    def write(self, name: str, data: bytes) -> Path:
        """Record ``name`` with its size and hash in the manifest, then write it atomically. Replaces only a
        file that is tf2dasl's (:meth:`owns`); anything else of that name is an ``OutputExistsError`` and stays
        as it was. Any failure is an :class:`OutputError` naming ``OUT/name``."""
        path = self._target(name)
        overwrite = self.owns(name)
        self._record_file(name, len(data), hashlib.sha256(data).hexdigest())
        target = write_bytes(path, data, overwrite=overwrite)
        self._written(name)
        return target

    def place(self, name: str, tmp: Path) -> Path:
        """Record the finished file ``tmp`` (made next to ``OUT/name``, e.g. by
        :class:`~tf2dasl.io.outputs.VideoEncoder`) as ``name`` and put it in place
        (:func:`~tf2dasl.io.outputs.place_file`: fsync, rename, folder fsync) on the same terms as :meth:`write`:
        only a file that is tf2dasl's is replaced. The temporary file is gone afterwards, also on failure."""
        try:
            target = self._target(name)
            overwrite = self.owns(name)
            self._record_file(name, *_size_and_hash(tmp, target))
        except OutputError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        place_file(tmp, target, overwrite=overwrite)
        self._written(name)
        return target

    def write_summary(self, name: str, summary: dict) -> Path:
        """The run's last file: ``summary`` as indented JSON under ``name``, written (as :meth:`write`) in the space
        the run held back (:meth:`release_reserve`), so that a disk the outputs filled still takes it."""
        self.release_reserve()
        return self.write(name, (json.dumps(summary, indent=2) + "\n").encode("utf-8"))

    def adopt(self, name: str) -> None:
        """Record ``OUT/name``, a file this run wrote in place line by line (a JSON-lines stream that must be
        readable while it grows), as tf2dasl's: its size and hash now."""
        self._record_file(name, *_size_and_hash(self.path / name, self.path / name))
        self._written(name)

    def _record_file(self, name: str, size: int, digest: str) -> None:
        """The manifest's record of ``OUT/name``, appended (and synced) *before* the file is put in place: nothing
        may be written that the manifest does not know. :class:`OutputError` naming ``OUT/name`` otherwise."""
        try:
            self._log.append({"type": "file", "run": self.run, "name": name, "bytes": size, "sha256": digest})
        except OutputError as exc:
            raise OutputError(self.path / name, f"{exc.reason} (writing the manifest)", exc.errno) from None
        self._hashes.setdefault(name, set()).add((size, digest))
        self._this_run[name] = (size, digest)

    def placed(self, name: str) -> bool:
        """True when ``OUT/name`` is the file this run recorded under that name (on disk, unchanged): whether
        a write that an interruption cut short had already put it in place."""
        rec = self._this_run.get(name)
        p = self.path / name
        if rec is None or p.is_symlink() or not p.is_file():
            return False
        try:
            return _size_and_hash(p, p) == rec
        except OutputError:
            return False

    def _written(self, name: str) -> None:
        self._owned_cache.pop(name, None)
        self.written.append(name)

    # --------------------------------------------------------------------------------------------- inputs
    def previous(self, key: str) -> dict | None:
        """The last manifest record of input ``key`` (any run), or None."""
        return self._inputs.get(key)

    def stems_of_other_inputs(self, keys) -> set[str]:
        """Stems recorded for inputs not in ``keys`` (their outputs are kept: no other input takes them)."""
        keys = set(keys)
        return {rec["stem"] for k, rec in self._inputs.items() if k not in keys and isinstance(rec.get("stem"), str)}

    def begin_input(self, key: str, stem: str) -> None:
        self._record_input(key, stem, "started")

    def complete_input(self, key: str, stem: str, files: list[str], fingerprint_: str, source: dict | None,
                       **extra) -> None:
        """Mark input ``key`` complete: every one of ``files`` was written for settings ``fingerprint_``."""
        self._record_input(key, stem, "complete", files=files, fingerprint=fingerprint_, source=source, **extra)

    def _record_input(self, key: str, stem: str, state: str, **fields) -> None:
        rec = {"type": "input", "run": self.run, "input": key, "stem": stem, "state": state, **fields}
        self._log.append(rec)
        self._inputs[key] = rec

    def is_complete(self, key: str, fingerprint_: str, source: dict | None) -> dict | None:
        """The completion record of input ``key`` when its outputs from an earlier run can be kept: complete,
        same ``fingerprint_`` (settings), same ``source`` state and every file still tf2dasl's; else None."""
        rec = self._inputs.get(key)
        if (not rec or rec.get("state") != "complete" or rec.get("fingerprint") != fingerprint_
                or source is None or rec.get("source") != source):
            return None
        return rec if all(self.owns(n) for n in rec.get("files", [])) else None

    def close(self) -> None:
        self.release_reserve()
        self._log.close()

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _size_and_hash(path: Path, name: Path) -> tuple[int, str]:
    """``(bytes, sha256)`` of the file at ``path``; :class:`OutputError` naming ``name`` when it cannot be read."""
    try:
        return path.stat().st_size, _sha256_file(path)
    except OSError as exc:
        raise OutputError.from_os(name, exc) from None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
