"""Calibration faces for the int8 exports: real face crops from *training* data, never from an evaluation set.

A calibration source is a folder in one of three layouts (:func:`source_kind`):

* ``aflw`` — AFLW in-the-wild crops (``annotations.npz`` + ``crops/*.jpg``, 3DDFA's AFLW protocol crops: the
  same framing as AFLW2000-3D's protocol crops, which is what the exports see at test time);
* ``pts`` — 300-W style images with 68-point ``.pts`` (``afw/``, ``helen_train/``): each face is cropped with
  3DDFA_V2's landmark roi rule (:func:`~tf2dasl.geometry.roi.roi_from_landmarks`);
* ``crops`` — a folder of ready ``S x S`` face crops.

:func:`load_calibration` draws ``faces`` crops spread evenly over the sources (a fixed seed: an export is
reproducible) and returns a :class:`CalibrationSet`: uint8 BGR crops ``(N, S, S, 3)`` and its description for
export.json (how many faces from which folder). A folder whose path names AFLW2000 is refused: that slice is
for measuring accuracy only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..geometry.roi import crop_image, roi_from_landmarks
from ..io.images import IMAGE_EXTENSIONS, read_image
from .sources import list_aflw_wild, list_pts_faces

#: The folders ``tf2dasl export`` calibrates on when none are given: 2DASL's kind of training faces in
#: ``$TF2DASL_SHARED`` (default ``../shared``), AFLW in-the-wild crops first (the protocol's framing).
DEFAULT_SOURCES = ("data/aflw_wild", "data/300w/afw", "data/300w/helen_train")
#: How many faces ``tf2dasl export`` calibrates on by default (min/max activation ranges settle by a few
#: hundred faces: 30 to 3000 faces gave AFLW2000-3D dev NMEs within the same ±0.04 band, docs/deployment.md)
DEFAULT_FACES = 500
#: The default sampling seed (an export is reproducible)
SEED = 0
#: Path parts that mark an evaluation set: never calibrate on it
EVALUATION_MARKERS = ("aflw2000",)


class CalibrationError(UserError):
    """Calibration faces cannot be read (a missing or unusable folder, an evaluation set, too few faces)."""


@dataclass
class CalibrationSet:
    """uint8 crops ``(N, S, S, 3)`` in the model's colour order (BGR) and where they came from."""

    crops: np.ndarray
    sources: dict[str, int] = field(default_factory=dict)
    seed: int = SEED

    def describe(self) -> dict:
        """export.json's ``calibration``: how many faces, from which folders, and how they were drawn."""
        return {"faces": int(len(self.crops)), "sources": dict(self.sources), "seed": int(self.seed),
                "drawn": "evenly over the sources, at random without replacement",
                "note": "training faces only; the AFLW2000-3D evaluation slice is never used"}


def default_sources(shared: str | os.PathLike | None = None) -> list[Path]:
    """The :data:`DEFAULT_SOURCES` under ``shared`` (default ``$TF2DASL_SHARED``, else ``../shared``) that exist."""
    root = Path(shared or os.environ.get("TF2DASL_SHARED", os.path.join("..", "shared")))
    return [root / s for s in DEFAULT_SOURCES if (root / s).is_dir()]


def source_kind(folder: Path) -> str:
    """``aflw``, ``pts`` or ``crops`` (module docstring); a :class:`CalibrationError` for anything else."""
    if not folder.is_dir():
        raise CalibrationError(f"--calibration {folder}: folder not found (AFLW crops, 300-W images with .pts, or "
                               "a folder of face crops)")
    if any(m in part.lower() for part in folder.resolve().parts for m in EVALUATION_MARKERS):
        raise CalibrationError(f"--calibration {folder}: an AFLW2000 evaluation folder; calibrate on training faces "
                               "(e.g. ../shared/data/aflw_wild), never on the faces accuracy is measured on")
    if (folder / "annotations.npz").is_file() and (folder / "crops").is_dir():
        return "aflw"
    images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise CalibrationError(f"--calibration {folder}: holds no images")
    return "pts" if any(p.with_suffix(".pts").is_file() for p in images) else "crops"


def _face_paths(folder: Path, kind: str) -> list:
    """Every face of a source: image paths (``aflw``, ``crops``) or :class:`~tf2dasl.data.sources.FaceSample`."""
    if kind == "aflw":
        return [s.image_path for s in list_aflw_wild(folder)]
    if kind == "pts":
        return list_pts_faces(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def _crop(face, kind: str, size: int) -> np.ndarray:
    """One face → ``(size, size, 3)`` uint8 BGR crop."""
    if kind == "pts":
        return crop_image(read_image(face.image_path), roi_from_landmarks(face.landmarks[None])[0], size)
    img = read_image(face)
    return img if img.shape[:2] == (size, size) else cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def load_calibration(folders, faces: int = DEFAULT_FACES, size: int = 120, seed: int = SEED) -> CalibrationSet:
    """``faces`` crops of ``size`` px drawn evenly over ``folders`` (one source each; module docstring) with the
    sampling seed ``seed``."""
    folders = [Path(f) for f in ([folders] if isinstance(folders, (str, os.PathLike)) else folders)]
    if not folders:
        raise CalibrationError("no calibration folder given (--calibration DIR: AFLW crops, 300-W images with .pts, "
                               "or a folder of face crops)")
    if faces < 1:
        raise CalibrationError(f"--calibration-faces must be at least 1, got {faces}")
    rng = np.random.default_rng(seed)
    kinds = [source_kind(f) for f in folders]
    pools = [_face_paths(f, k) for f, k in zip(folders, kinds)]
    shares = [faces // len(folders) + (i < faces % len(folders)) for i in range(len(folders))]
    crops, sources = [], {}
    for folder, kind, pool, share in zip(folders, kinds, pools, shares):
        pick = rng.choice(len(pool), min(share, len(pool)), replace=False)
        crops += [_crop(pool[i], kind, size) for i in sorted(pick)]
        sources[str(folder)] = int(len(pick))
    return CalibrationSet(np.stack(crops).astype(np.uint8), sources, seed)
