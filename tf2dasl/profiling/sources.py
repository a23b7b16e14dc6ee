"""Source faces for profiling: the in-the-wild *training* faces of a config (the candidates,
:func:`tf2dasl.profiling.dataset.training_faces`), each read into a work image.

A work image (:func:`load_source`) holds the face's crop box (roi) and some of the photo around it:

* a 300-W face: the photo resampled so that its landmark roi (3DDFA_V2's rule, from the manual 68 points) is
  ``size`` pixels wide, ``WORK_EXTENT`` roi sides around it;
* an AFLW face: its 120-pixel crop (its roi is the whole crop) without the black bands where the crop runs past its
  photo, in a canvas ``WORK_EXTENT`` roi sides wide.

A profile's crop reaches past where the near-frontal photo's crop did (behind the turned head), so where the work
image has no photo it is filled by :func:`fill_unknown`: a smooth continuation of the photo's colours (push-pull
over an image pyramid), like a defocused background — not streaks of repeated edge pixels, not black.

Its ``crop`` is what the teacher sees: the roi sampled at ``size`` pixels (AFLW: the crop file itself).
Images are read as stored (no EXIF rotation: the annotations refer to the stored pixels), BGR uint8.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..data.sources import FaceSample
from ..errors import UserError
from ..geometry.camera import resize_points
from ..geometry.roi import roi_from_landmarks
from .frames import cut_crop

#: a work image spans this many roi sides around the roi
WORK_EXTENT = 2.0
#: the push-pull fill stops at pyramid levels this small
FILL_MIN_SIDE = 4
#: a border row or column of an AFLW crop whose brightest value is at most this is padding (JPEG keeps it near 0)
PADDING_LEVEL = 12


class SourceError(UserError):
    """A source face's image cannot be read (one line naming it)."""


@dataclass(frozen=True)
class SourceImage:
    """A face's ``work`` image ``(H, W, 3)`` uint8, its ``roi (4,)`` in it, its manual ``points (K, 2)`` in the
    work image (NaN = not visible) and the teacher's ``crop (size, size, 3)`` of the roi."""

    work: np.ndarray
    roi: np.ndarray
    points: np.ndarray
    crop: np.ndarray


def _read(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise SourceError(f"{path}: cannot read the image (missing, unreadable or not an image)")
    return image


def padding(image: np.ndarray, keep: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` rows / columns of black padding at the border of ``image``, never cutting
    into the box ``keep [x0, y0, x1, y1]``."""
    bright = image.max(axis=2)
    rows, cols = bright.max(axis=1) <= PADDING_LEVEL, bright.max(axis=0) <= PADDING_LEVEL
    h, w = bright.shape
    x0, y0, x1, y1 = np.floor(keep[:2]).astype(int).tolist() + np.ceil(keep[2:]).astype(int).tolist()

    def run(flags, limit):
        n = 0
        while n < min(limit, len(flags)) and flags[n]:
            n += 1
        return n

    return (run(rows, max(y0, 0)), run(rows[::-1], max(h - 1 - y1, 0)),
            run(cols, max(x0, 0)), run(cols[::-1], max(w - 1 - x1, 0)))


def fill_unknown(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``image (H, W, 3)`` uint8 with the pixels where ``known (H, W)`` is False (or weighs less than 1) replaced by
    a smooth continuation of the known ones: push-pull — premultiplied colours and weights averaged down an image
    pyramid, then each level's gaps filled from the level above (known pixels are kept exactly)."""
    colour = image.astype(np.float32) * known[..., None]
    weight = known.astype(np.float32)
    levels = [(colour, weight)]
    while min(levels[-1][1].shape) > FILL_MIN_SIDE:
        levels.append((cv2.pyrDown(levels[-1][0]), cv2.pyrDown(levels[-1][1])))
    c, w = levels[-1]
    out = c / np.maximum(w, 1e-6)[..., None]
    for c, w in reversed(levels[:-1]):
        up = cv2.pyrUp(out, dstsize=(w.shape[1], w.shape[0]))
        w = np.clip(w, 0.0, 1.0)[..., None]
        out = c + (1.0 - w) * up                            # c = w x colour: known pixels keep their own colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _in_canvas(image: np.ndarray, window: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """The ``window`` box of ``image`` resampled to an ``n x n`` work image, parts beyond the image filled
    (:func:`fill_unknown`); and the work pixels per image pixel."""
    work = cut_crop(image, window, n)
    known = cut_crop(np.full(image.shape[:2], 255, np.uint8), window, n) == 255
    return (work if known.all() else fill_unknown(work, known)), n / float(window[2] - window[0])


def _around(photo: np.ndarray, roi: np.ndarray, points: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """The work image of ``photo (H, W, 3)`` around its square ``roi (4,)``: :data:`WORK_EXTENT` roi sides, the
    roi ``size`` pixels wide; with the ``roi (4,)`` and ``points (K, 2)`` of the photo moved into it."""
    half = WORK_EXTENT * (roi[2] - roi[0]) / 2
    centre = (roi[:2] + roi[2:]) / 2
    window = np.r_[centre - half, centre + half]
    work, k = _in_canvas(photo, window, int(round(WORK_EXTENT * size)))    # k: work pixels per photo pixel
    roi_w = (roi - np.r_[window[:2], window[:2]]) * k       # boxes scale as areas, pixel centres shift by (k - 1) / 2
    return work, roi_w, resize_points(points - window[:2], k, np.float64)


def photo_source(image: np.ndarray, points: np.ndarray, size: int) -> SourceImage:
    """The work image of a face in a photo ``image (H, W, 3)`` given by its 68 points ``(68, 2)`` (image pixels):
    the photo resampled so that their landmark roi is ``size`` pixels wide, :data:`WORK_EXTENT` roi sides around
    it."""
    points = np.asarray(points, np.float64)
    work, roi, points = _around(image, roi_from_landmarks(points[None])[0].astype(np.float64), points, size)
    return SourceImage(work, roi, points, cut_crop(work, roi, size))


def load_source(face: FaceSample, size: int) -> SourceImage:
    """The work image of a candidate (see the module doc)."""
    image = _read(face.image_path)
    if face.roi is None:                                    # a 300-W face: the photo around its landmark roi
        return photo_source(image, face.landmarks, size)
    points = np.asarray(face.landmarks, np.float64)
    roi = np.asarray(face.roi, np.float64)                  # an AFLW crop: the crop is the roi
    crop = image if image.shape[:2] == (size, size) else cv2.resize(image, (size, size))
    visible = points[np.isfinite(points).all(axis=1)]
    top, bottom, left, right = padding(image, np.r_[visible.min(axis=0), visible.max(axis=0)])
    h, w = image.shape[:2]
    shift = np.array([left, top], np.float64)                # crop pixels → pixels of the photo without padding
    work, roi_w, points_w = _around(image[top:h - bottom, left:w - right], roi - np.r_[shift, shift], points - shift,
                                    size)
    return SourceImage(work, roi_w, points_w, crop)
