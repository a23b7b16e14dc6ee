"""Face detectors behind one interface (:class:`FaceDetector`), and :func:`make_detector`.

Conventions: input images are ``(H, W, 3)`` uint8 **BGR**; boxes are ``[x0, y0, x1, y1]`` float32 in
0-based image pixels (integer values are pixel centres); detections come sorted by score, highest first.

Detectors (names for :func:`make_detector`):
  * ``"blazeface-full"``: MediaPipe BlazeFace full range sparse (192x192, ``face_detection_full_range_sparse.tflite``);
  * ``"blazeface-short"``: MediaPipe BlazeFace short range (128x128, ``face_detection_short_range.tflite``),
    made for large (selfie-distance) faces;
  * ``"blazeface"``: :class:`BlazeFaceCombined` (full range, plus the short-range faces full range
    missed) when both model files are there, else whichever one is;
  * ``"haar"``: OpenCV's Haar cascade (no model file needed; frontal faces only);
  * ``"auto"`` (default): ``"blazeface"`` if a BlazeFace model file is there, else Haar. Haar is taken
    silently only when no assets location was given at all (neither ``assets_dir`` nor ``$TF2DASL_ASSETS``)
    or the given folder exists and ``require_assets`` is False; a given folder that does not exist (or, with
    ``require_assets=True`` as ``tf2dasl reconstruct --assets`` uses, one without a BlazeFace model) is a
    :class:`DetectorError` naming the folder.

Why full range first: short range (a selfie model) misses the small faces of group photos (none of the
6 in ``group_t1.jpg``; full range finds 5) while full range at MediaPipe's 0.5 threshold misses 2.4% of
the 300-W crops (faces filling half the frame), all of which short range finds; the combination finds
100% of the 1,207 crops and the labelled face in all 12 ``afw/full`` photos, where each model alone
misses one (benchmarks/detection_rate.py).

``assets_dir`` is searched for the model files directly and in its ``detectors/`` subfolder; when None,
``$TF2DASL_ASSETS`` is used if set.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io.pts import PtsError, read_pts  # noqa: F401  (re-exported for convenience)
from .base import Detection, DetectorError, FaceDetector, box_iou, scale_shift_box  # noqa: F401
from .blazeface import (  # noqa: F401
    FULL_RANGE, SHORT_RANGE, BlazeFaceCombined, BlazeFaceDetector, BlazeFaceSpec, generate_anchors,
)
from .haar import HaarDetector  # noqa: F401

DETECTOR_NAMES = ("auto", "blazeface", "blazeface-short", "blazeface-full", "haar")


def _search_dirs(assets_dir: str | os.PathLike | None) -> list[Path]:
    if assets_dir is None:
        env = os.environ.get("TF2DASL_ASSETS")
        if not env:
            return []
        assets_dir = env
    root = Path(assets_dir)
    return [root, root / "detectors"]


def find_model_file(filename: str, assets_dir: str | os.PathLike | None) -> Path | None:
    """``assets_dir/filename`` or ``assets_dir/detectors/filename`` if it exists, else None."""
    for d in _search_dirs(assets_dir):
        if (d / filename).is_file():
            return d / filename
    return None


def _assets_source(assets_dir) -> str:
    """How the user named the assets location, for messages: ``"--assets DIR"`` or ``"$TF2DASL_ASSETS=DIR"``."""
    if assets_dir is not None:
        return f"--assets {assets_dir}"
    return f"$TF2DASL_ASSETS={os.environ.get('TF2DASL_ASSETS')}"


def _no_blazeface(assets_dir) -> DetectorError:
    root = Path(assets_dir if assets_dir is not None else os.environ["TF2DASL_ASSETS"])
    what = "folder not found" if not root.is_dir() else "no BlazeFace model in it or its detectors/ subfolder"
    return DetectorError(
        f"{_assets_source(assets_dir)}: {what}; it should hold {FULL_RANGE.model_file} and/or "
        f"{SHORT_RANGE.model_file} (directly or in detectors/), or use --detector haar"
    )


def _missing(name: str, filename: str, assets_dir) -> DetectorError:
    where = assets_dir if assets_dir is not None else os.environ.get("TF2DASL_ASSETS") or "<no assets dir given>"
    return DetectorError(
        f"{name}: model file {filename} not found in {where}; pass --assets DIR or use --detector haar"
    )


def make_detector(name: str = "auto", assets_dir: str | os.PathLike | None = None, *, require_assets: bool = False,
                  **opts) -> FaceDetector:
    """Build a face detector by name (see the module docstring for the names).

    ``opts`` go to the detector's constructor: ``score_threshold`` (for the combined BlazeFace: both
    models; default 0.4 full range / 0.5 short range), ``min_size``, ``max_faces`` for all;
    ``num_threads`` and ``iou_threshold`` for BlazeFace (ignored by Haar); ``scale_factor``,
    ``min_neighbors``, ``max_side`` for Haar (ignored by BlazeFace).
    ``require_assets``: for ``"auto"``, an assets location that was given (``assets_dir`` or
    ``$TF2DASL_ASSETS``) must hold a BlazeFace model (no silent Haar fallback); a given folder that does not
    exist is an error either way.
    Raises :class:`DetectorError` for an unknown name, a missing model file of an explicitly named detector,
    or (``"auto"``) a given assets folder that does not exist / holds no BlazeFace model (see above).
    """
    key = (name or "auto").strip().lower()
    if key not in DETECTOR_NAMES:
        raise DetectorError(f"unknown detector {name!r}; use one of {', '.join(DETECTOR_NAMES)}")
    blaze_keys = {"score_threshold", "min_size", "max_faces", "num_threads", "iou_threshold"}
    haar_keys = {
        "score_threshold", "min_size", "max_faces", "scale_factor", "min_neighbors", "max_side", "cascade_path",
    }
    unknown = set(opts) - blaze_keys - haar_keys
    if unknown:
        raise DetectorError(f"unknown detector option(s): {', '.join(sorted(unknown))}")

    blaze_opts = {k: v for k, v in opts.items() if k in blaze_keys}

    def haar() -> HaarDetector:
        return HaarDetector(**{k: v for k, v in opts.items() if k in haar_keys})

    if key == "haar":
        return haar()
    full = find_model_file(FULL_RANGE.model_file, assets_dir)
    short = find_model_file(SHORT_RANGE.model_file, assets_dir)
    if key == "blazeface-full":
        if full is None:
            raise _missing(key, FULL_RANGE.model_file, assets_dir)
        return BlazeFaceDetector(full, FULL_RANGE, **blaze_opts)
    if key == "blazeface-short":
        if short is None:
            raise _missing(key, SHORT_RANGE.model_file, assets_dir)
        return BlazeFaceDetector(short, SHORT_RANGE, **blaze_opts)
    # "blazeface" / "auto"
    if full is not None and short is not None:
        return BlazeFaceCombined(full, short, **blaze_opts)
    if full is not None:
        return BlazeFaceDetector(full, FULL_RANGE, **blaze_opts)
    if short is not None:
        return BlazeFaceDetector(short, SHORT_RANGE, **blaze_opts)
    if key == "auto":
        given = _search_dirs(assets_dir)  # [] when no assets location was given at all
        if given and (require_assets or not given[0].is_dir()):
            raise _no_blazeface(assets_dir)
        return haar()
    raise _missing("blazeface", FULL_RANGE.model_file, assets_dir)


def boxes_from_pts(pts: np.ndarray) -> np.ndarray:
    """Bounding box ``(4,)`` float32 ``[x0, y0, x1, y1]`` of landmarks ``(K, 2)`` or ``(K, 3)`` (x, y used)."""
    p = np.asarray(pts, np.float32)
    if p.ndim != 2 or p.shape[1] < 2 or len(p) == 0:
        raise ValueError(f"expected landmarks of shape (K, 2) or (K, 3), got {p.shape}")
    return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()], np.float32)


__all__ = [
    "Detection", "DetectorError", "FaceDetector", "BlazeFaceDetector", "BlazeFaceCombined", "HaarDetector",
    "BlazeFaceSpec",
    "SHORT_RANGE", "FULL_RANGE", "DETECTOR_NAMES", "make_detector", "find_model_file", "boxes_from_pts",
    "box_iou", "scale_shift_box", "generate_anchors", "read_pts", "PtsError",
]
