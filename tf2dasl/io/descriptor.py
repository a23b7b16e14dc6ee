"""Reading the versioned JSON files that describe a folder (a model directory's ``model.json``, an export's
``export.json``): one set of checks and one-line errors for both."""
from __future__ import annotations

from pathlib import Path

from .json_text import JsonTextError, parse_json


def read_descriptor(folder: str | Path, filename: str, fmt: str, max_version: int, error: type[Exception],
                    what: str, hint: str) -> dict:
    """``folder/filename`` parsed and checked: the folder and file exist, it is JSON, its ``format`` is ``fmt``
    and its ``format_version`` is an int no newer than ``max_version``. Failures raise ``error`` with one line
    naming the path, what was expected (``what``, e.g. "model directory") and ``hint`` (how to make one)."""
    d = Path(folder)
    if not d.is_dir():
        raise error(f"{d}: {what} not found; {hint}")
    path = d / filename
    if not path.is_file():
        raise error(f"{d}: not a tf2dasl {what} (no {filename}); {hint}")
    try:
        meta = parse_json(path.read_bytes())
    except JsonTextError as exc:
        raise error(f"{path}: not valid JSON ({exc}); {hint}") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise error(f"{path}: not a tf2dasl {what} description (format != {fmt!r}); {hint}")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > max_version:
        raise error(f"{d}: {what} format version {version} is newer than this tf2dasl supports ({max_version}); "
                    "upgrade tf2dasl (pip install -U tf2dasl)")
    return meta
