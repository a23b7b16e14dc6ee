"""Source faces for profiling: the in-the-wild *training* faces of a config, each read into a work image.

Candidates are the faces :mod:`tf2dasl.data.pipeline` trains on — the 300-W folders without their hold-out and
AFLW without its validation split — so a held-out face is never profiled. AFLW faces annotated more than
``aflw_max_yaw`` from frontal, or with fewer than ``aflw_min_visible`` visible points, are not candidates.

A work image (:func:`load_source`) holds the face's crop box (roi) and some of the photo around it:

* a 300-W face: the photo resampled so that its landmark roi (3DDFA_V2's rule, from the manual 68 points) is
  ``size`` pixels wide, ``WORK_EXTENT`` roi sides around it (the photo's edge pixels repeated where it ends);
* an AFLW face: its 120-pixel crop as it is (its roi is the whole crop), without the black bands where the crop
  runs past its photo (so that warped views repeat the photo's edge there, not the padding).

Its ``crop`` is what the teacher sees: the roi sampled at ``size`` pixels (AFLW: the crop file itself).
Images are read as stored (no EXIF rotation: the annotations refer to the stored pixels), BGR uint8.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..data.config import WildDataConfig
from ..data.sources import FaceSample
from ..errors import UserError
from ..geometry.roi import roi_from_landmarks
from .config import SelectConfig
from .frames import cut_crop

#: a 300-W work image spans this many roi sides around the roi
WORK_EXTENT = 2.0
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


def training_faces(wild: WildDataConfig, select: SelectConfig) -> list[FaceSample]:
    """The candidate source faces of a config's ``data.wild`` (paths expanded), 300-W's first, each in name order."""
    from ..data.pipeline import _list_68, list_aflw

    out: list[FaceSample] = []
    if wild.pts_folders or wild.lp_folders:
        out += _list_68(wild)[0]
    if wild.aflw is not None:
        for s in list_aflw(wild.aflw)[0]:
            visible = int(np.isfinite(s.landmarks).all(axis=1).sum())
            if s.yaw is not None and abs(s.yaw) <= select.aflw_max_yaw and visible >= select.aflw_min_visible:
                out.append(s)
    return out


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


def photo_source(image: np.ndarray, points: np.ndarray, size: int) -> SourceImage:
    """The work image of a face in a photo ``image (H, W, 3)`` given by its 68 points ``(68, 2)`` (image pixels):
    the photo resampled so that their landmark roi is ``size`` pixels wide, :data:`WORK_EXTENT` roi sides around
    it (the photo's edge pixels repeated beyond it)."""
    points = np.asarray(points, np.float64)
    roi = roi_from_landmarks(points[None])[0].astype(np.float64)
    half = WORK_EXTENT * (roi[2] - roi[0]) / 2
    centre = (roi[:2] + roi[2:]) / 2
    window = np.r_[centre - half, centre + half]
    n = int(round(WORK_EXTENT * size))
    work = cut_crop(image, window, n, cv2.BORDER_REPLICATE)
    k = n / (2 * half)                                      # work pixels per photo pixel
    roi_w = (roi - np.r_[window[:2], window[:2]]) * k       # boxes scale as areas, pixel centres shift by (k - 1) / 2
    points_w = (points - window[:2]) * k + (k - 1) / 2
    return SourceImage(work, roi_w, points_w, cut_crop(work, roi_w, size))


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
    work = image[top:image.shape[0] - bottom, left:image.shape[1] - right]
    offset = np.array([left, top], np.float64)
    return SourceImage(np.ascontiguousarray(work), np.r_[roi[:2] - offset, roi[2:] - offset], points - offset, crop)
