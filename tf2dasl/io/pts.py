"""Reading 300-W / iBUG ``.pts`` landmark files.

Format::

    version: 1
    n_points:  68
    {
    96.387 130.341
    ...
    }

Coordinates in the file are **1-based** pixels (300-W convention: the centre of the top-left pixel is
``(1, 1)``); :func:`read_pts` returns **0-based** image pixels (``file - 1``), points-last ``(N, 2)``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .boxes import placement_problem


class PtsError(UserError):
    """A ``.pts`` file that is missing or malformed; the message names the file and the problem."""


def read_pts(path: str | os.PathLike, n_points: int | None = 68) -> np.ndarray:
    """Read a ``.pts`` file as ``(n_points, 2)`` float32 **0-based** image pixels ``(x, y)``.

    ``n_points`` is the count the caller expects (68 for 300-W); ``None`` accepts whatever the header says.
    Raises :class:`PtsError` when the file is missing, the header or braces are malformed, a line is not
    two numbers, or the number of points differs from the header or from ``n_points``.
    """
    p = Path(path)
    if not p.is_file():
        raise PtsError(f"{path}: file not found")
    try:
        text = p.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise PtsError(f"{path}: cannot read .pts file ({exc})") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    header: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i] != "{":
        key, sep, value = lines[i].partition(":")
        if not sep:
            raise PtsError(f"{path}: malformed .pts header line {lines[i]!r} (expected 'key: value' or '{{')")
        header[key.strip().lower()] = value.strip()
        i += 1
    if i == len(lines):
        raise PtsError(f"{path}: malformed .pts file (no '{{' opening the point list)")
    try:
        end = lines.index("}", i + 1)
    except ValueError:
        raise PtsError(f"{path}: malformed .pts file (no '}}' closing the point list)") from None
    rows = []
    for ln in lines[i + 1 : end]:
        parts = ln.split()
        try:
            if len(parts) != 2:
                raise ValueError
            rows.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise PtsError(f"{path}: malformed point line {ln!r} (expected two numbers 'x y')") from None
    if "n_points" in header:
        try:
            declared = int(header["n_points"])
        except ValueError:
            raise PtsError(f"{path}: malformed n_points {header['n_points']!r}") from None
        if declared != len(rows):
            raise PtsError(f"{path}: header says n_points {declared} but the file lists {len(rows)} points")
    if n_points is not None and len(rows) != n_points:
        raise PtsError(f"{path}: expected {n_points} points, found {len(rows)}")
    pts = np.asarray(rows, dtype=np.float32).reshape(-1, 2) - 1.0
    if not np.all(np.isfinite(pts)):
        raise PtsError(f"{path}: non-finite coordinates")
    return pts


def check_pts_in_image(path, points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``points`` ``(N, 2)`` of the ``.pts`` file ``path``, checked against an image of ``size`` ``(width, height)``:
    their box must lie in the image and be no larger than :data:`tf2dasl.io.boxes.MAX_BOX_IMAGE_RATIO` times its
    longer side (:func:`~tf2dasl.io.boxes.placement_problem`); :class:`PtsError` naming the file otherwise."""
    box = [*np.min(points, axis=0).tolist(), *np.max(points, axis=0).tolist()]
    why = placement_problem(box, size)
    if why:
        raise PtsError(f"{path}: the landmarks' box {[round(c, 1) for c in box]} {why}; fix the file's points "
                       "(0-based after the file's 1-based pixels)")
    return points
