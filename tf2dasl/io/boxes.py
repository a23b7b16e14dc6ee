"""Face boxes a user gives instead of detection (``reconstruct --boxes FILE.json``): read and checked.

``{"image.jpg": [[x0, y0, x1, y1], ...], ...}`` in 0-based image pixels (FaceBoxes-like boxes: the 3DDFA_V2 roi
rule is applied to them). A malformed file or an unusable box is one line (:class:`BoxesError`) naming the file,
the image and the box.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import UserError
from .json_text import JsonTextError, parse_json

#: A given box narrower or shorter than this (pixels) makes an empty 3DDFA roi crop (the roi side is
#: ``floor(1.58 * mean side)`` and its corners are rounded): such boxes are rejected when the file is read.
MIN_BOX_SIDE = 2.0
#: A given box (or the box of given landmarks) may be at most this many times the image's longer side: a face
#: larger than that is not in the photo, and its crop would be mostly padding.
MAX_BOX_IMAGE_RATIO = 2.0


class BoxesError(UserError):
    """A ``--boxes`` file, or one of its boxes, that cannot be used; the message names the file/image and the box."""


def _is_number(c) -> bool:
    return isinstance(c, (int, float)) and not isinstance(c, bool)


def read_boxes_file(path) -> dict:
    """``{"image.jpg": [[x0, y0, x1, y1], ...], ...}`` from a JSON file; one clear line (:class:`BoxesError`)
    when it is malformed or a box is unusable: not finite, or ``x1 - x0`` / ``y1 - y0`` below
    :data:`MIN_BOX_SIDE` pixels. Whether a box overlaps its image is checked per image by
    :func:`tf2dasl.batch.reconstruct_paths` (a per-image failure, as are unusable boxes given there as a dict)."""
    try:
        data = parse_json(Path(path).read_bytes())
    except FileNotFoundError:
        raise BoxesError(f"{path}: boxes file not found") from None
    except OSError as exc:
        raise BoxesError(f"{path}: cannot read the boxes file ({exc.strerror or exc})") from None
    except JsonTextError as exc:
        raise BoxesError(f"{path}: not valid JSON ({exc})") from None
    ok = isinstance(data, dict) and all(
        isinstance(v, list) and all(isinstance(b, list) and len(b) == 4 and all(_is_number(c) for c in b)
                                    for b in v) for v in data.values())
    if not ok:
        raise BoxesError(f'{path}: expected {{"image.jpg": [[x0, y0, x1, y1], ...], ...}}')
    for key, boxes in data.items():
        for box in boxes:
            why = box_problem(box)
            if why:
                raise BoxesError(f"{path}: box {box} of {key!r} {why}; boxes are [x0, y0, x1, y1] in image pixels")
    return data


def box_problem(box) -> str | None:
    """What is wrong with one box ``[x0, y0, x1, y1]`` on its own (no image needed), or None."""
    x0, y0, x1, y1 = (float(c) for c in box)
    if not all(math.isfinite(c) for c in (x0, y0, x1, y1)):
        return "has a non-finite coordinate"
    if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
        return f"needs x0 < x1 and y0 < y1, at least {MIN_BOX_SIDE:g} pixels apart"
    return None


def given_boxes(path: Path, size: tuple[int, int], boxes) -> np.ndarray:
    """The boxes given for an image of ``size`` ``(width, height)`` as ``(F, 4)`` float32; :class:`BoxesError`
    naming ``path`` when one is malformed, unusable or lies entirely outside the image (a black crop would
    still give a "face")."""
    try:
        arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    except (TypeError, ValueError):
        raise BoxesError(f"{path}: given boxes {boxes!r} are not a list of [x0, y0, x1, y1]") from None
    for box in arr.tolist():
        why = box_problem(box) or placement_problem(box, size)
        if why:
            raise BoxesError(f"{path}: given box {box} {why}; fix its entry in the boxes")
    return arr


def placement_problem(box, size: tuple[int, int]) -> str | None:
    """What is wrong with where box ``[x0, y0, x1, y1]`` lies in an image of ``size`` ``(width, height)``: outside
    it, or larger than :data:`MAX_BOX_IMAGE_RATIO` times its longer side (far outside it); None when usable."""
    w, h = size
    x0, y0, x1, y1 = (float(c) for c in box)
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        return f"lies outside the {w}x{h} image"
    limit = MAX_BOX_IMAGE_RATIO * max(w, h)
    if x1 - x0 > limit or y1 - y0 > limit:
        return f"reaches far outside the {w}x{h} image (more than {MAX_BOX_IMAGE_RATIO:g} times its longer side)"
    return None
