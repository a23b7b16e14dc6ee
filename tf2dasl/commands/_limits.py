"""The bounds every command that reads photos shares, so that memory stays bounded whatever the input:
``--max-pixels`` (the image-size bound of :func:`tf2dasl.io.images.decode_image`) and ``--max-faces`` (faces
reconstructed per image, :data:`tf2dasl.reconstruct.DEFAULT_MAX_FACES`)."""
from __future__ import annotations

import argparse

from ..io.images import DEFAULT_MAX_PIXELS
from ..reconstruct import DEFAULT_MAX_FACES


def _limit(least: int, what: str, name: str):
    """An argparse type ``name``: an integer of at least ``least``, else an error saying ``what`` to give."""
    def parse(text: str) -> int:
        value = int(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    parse.__name__ = name  # what argparse calls a value that is not an integer ("invalid NAME value: 'x'")
    return parse


_max_pixels = _limit(0, "0 (no limit) or a positive number of pixels", "_max_pixels")
_max_faces = _limit(1, "at least 1 face", "_max_faces")


def add_max_pixels(p, reduced: bool = False) -> None:
    """``--max-pixels N`` (default :data:`~tf2dasl.io.images.DEFAULT_MAX_PIXELS`; 0: no limit). ``reduced``: the
    command decodes larger JPEGs at a reduced size instead of refusing them."""
    what = ("are decoded at 1/2, 1/4 or 1/8 of their size when they are JPEGs, refused otherwise (one line each), "
            "and coordinates stay in full-image pixels" if reduced else "are refused in one line before decoding")
    p.add_argument("--max-pixels", type=_max_pixels, default=None, metavar="N",
                   help=f"images with more pixels {what}, so memory stays bounded (default: "
                        f"{DEFAULT_MAX_PIXELS}; 0: no limit)")


def max_pixels_of(args) -> int | None:
    """The image-size bound of the command line: the default, the given number, or None for ``0`` (no limit)."""
    return DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels or None


def add_max_faces(p, given_boxes: bool = True) -> None:
    """``--max-faces N``: faces reconstructed per image (default :data:`~tf2dasl.reconstruct.DEFAULT_MAX_FACES`).
    ``given_boxes``: the command also takes boxes from the user (``--boxes``)."""
    which = "the highest-scoring detections" + (", or the first given boxes" if given_boxes else "")
    p.add_argument("--max-faces", type=_max_faces, default=None, metavar="N",
                   help=f"reconstruct at most this many faces per image (default {DEFAULT_MAX_FACES}): {which}; "
                        "the others are reported")


def max_faces_of(args) -> int:
    return DEFAULT_MAX_FACES if args.max_faces is None else args.max_faces
