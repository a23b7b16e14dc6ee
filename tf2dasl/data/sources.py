"""Listing training samples from the published dataset layouts (no TensorFlow here).

* 300-W style folders: images with a 68-point ``.pts`` beside them (``afw/``, ``helen_train/``, ...)
  → :class:`FaceSample` with **0-based** image-pixel landmarks ``(68, 2)``.
* 300W-LP ``.mat`` folders: ``pt2d`` ``(2, 68)`` beside each ``.jpg`` → :class:`FaceSample` (2D labels only;
  300W-LP's ``Shape_Para``/``Exp_Para`` are full-BFM coefficients, not 3DDFA's 62 parameters).
* AFLW in-the-wild crops (``aflw_wild/``: ``crops/*.jpg`` 120x120, ``annotations.npz`` with 21 points per face,
  NaN = not visible) → :class:`FaceSample` with the 21 points in crop pixels and the whole crop as the roi.
* 3DDFA's training layout: a list file of 120x120 crop names (relative to a root folder) and an
  ``(N, 62)`` parameter array (``.npy`` or ``.pkl``) → :class:`ParamSample` with **raw** parameters.
  3DDFA v1's ``param_all_norm.pkl`` holds *whitened* parameters (``(p - mean) / std`` with
  ``train.configs/param_whitening.pkl``): pass ``whitened=True`` and the whitening file.

Images are not opened here: unreadable ones are found (and skipped, counted) when a pipeline loads them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.io as sio

from ..errors import UserError
from ..geometry.morphable_model import NUM_LANDMARKS, NUM_PARAMS
from ..io.images import IMAGE_EXTENSIONS
from ..io.morphable_files import load_pickle, read_whitening
from ..io.pts import PtsError, read_pts


class DataSourceError(UserError):
    """A dataset folder, list, label or parameter file that is missing or malformed (one line naming it)."""


@dataclass(eq=False)
class FaceSample:
    """An in-the-wild face: ``image_path`` and its ``landmarks (K, 2)`` float32, 0-based image pixels (x, y), of
    the landmark set ``landmark_set`` (``"68"``: 300-W's; ``"aflw21"``: AFLW's, NaN = not visible). ``roi``: the
    face's crop box ``[x0, y0, x1, y1]`` when it is given (partial sets), else None (made from the landmarks);
    ``yaw`` in degrees when known."""

    image_path: str
    landmarks: np.ndarray
    landmark_set: str = "68"
    roi: np.ndarray | None = None
    yaw: float | None = None

    @property
    def name(self) -> str:
        return Path(self.image_path).name


@dataclass(eq=False)
class ParamSample:
    """A 3D-labelled crop: ``image_path`` (an ``S x S`` face crop), raw 3DDFA ``params (62,)`` float32 and
    optional ``landmarks (68, 2)`` crop pixels (``None`` in 3DDFA's layout)."""

    image_path: str
    params: np.ndarray
    landmarks: np.ndarray | None = None

    @property
    def name(self) -> str:
        return Path(self.image_path).name


def _folders(folders: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    out = [Path(f) for f in folders]
    if not out:
        raise DataSourceError("no dataset folder given")
    return out


def _need_dir(d: Path, what: str) -> None:
    if not d.exists():
        raise DataSourceError(f"{d}: folder not found (expected {what})")
    if not d.is_dir():
        raise DataSourceError(f"{d}: not a folder (expected {what})")


def list_pts_faces(folders: str | os.PathLike | Iterable[str | os.PathLike],
                   failures: list | None = None) -> list[FaceSample]:
    """300-W style folders (images + 68-point ``.pts`` with the same stem) → faces, sorted by name per folder.

    Not recursive (``afw/full/`` is not read from ``afw/``). An image without a ``.pts`` is ignored;
    a ``.pts`` with another point count or malformed → :class:`DataSourceError` naming it, or, when
    ``failures`` is a list, ``(image_path, reason)`` appended to it and the rest listed; a missing folder
    or one with no labelled image → :class:`DataSourceError`.
    """
    out: list[FaceSample] = []
    for d in _folders(folders):
        _need_dir(d, "300-W style images with 68-point .pts files")
        found = 0
        for img in sorted((p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                          key=lambda p: p.name):
            pts = img.with_suffix(".pts")
            if not pts.is_file():
                continue
            found += 1
            try:
                lm = read_pts(pts, NUM_LANDMARKS)
            except PtsError as exc:
                if failures is None:
                    raise DataSourceError(str(exc)) from None
                failures.append((str(img), str(exc)))
                continue
            out.append(FaceSample(str(img), lm))
        if not found:
            raise DataSourceError(f"{d}: no image with a .pts file found (expected 300-W style image/.pts pairs)")
    return out


def load_mat(path: str | os.PathLike, variable_names: Sequence[str], error: type[UserError] = DataSourceError,
             note: str = "") -> dict:
    """The variables ``variable_names`` of a MATLAB ``.mat`` file (those present; the caller checks its keys).

    A missing, truncated or corrupt file (scipy raises several exception types) → ``error`` in one line
    naming the file, followed by ``note`` (e.g. why the run stops)."""
    try:
        return sio.loadmat(str(path), variable_names=list(variable_names))
    except Exception as exc:  # scipy raises several types on corrupt files
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise error(f"{path}: cannot read .mat file ({type(exc).__name__}: {reason}){note}") from None


def list_300wlp(folders: str | os.PathLike | Iterable[str | os.PathLike]) -> list[FaceSample]:
    """300W-LP folders (``NAME.jpg`` + ``NAME.mat`` holding ``pt2d (2, 68)``) → faces with ``pt2d`` as landmarks.

    ``pt2d`` is taken as 0-based image pixels as published. A ``.mat`` without its ``.jpg`` is ignored;
    a ``.mat`` that is unreadable or lacks a ``(2, 68)`` ``pt2d`` → :class:`DataSourceError` naming it.
    """
    out: list[FaceSample] = []
    for d in _folders(folders):
        _need_dir(d, "300W-LP .jpg/.mat pairs")
        found = 0
        for mat in sorted(d.glob("*.mat"), key=lambda p: p.name):
            img = mat.with_suffix(".jpg")
            if not img.is_file():
                continue
            m = load_mat(mat, ["pt2d"])
            pt2d = m.get("pt2d")
            if pt2d is None or np.shape(pt2d) != (2, NUM_LANDMARKS):
                got = "no pt2d" if pt2d is None else f"pt2d of shape {np.shape(pt2d)}"
                raise DataSourceError(f"{mat}: expected pt2d of shape (2, 68) (300W-LP layout), found {got}")
            lm = np.asarray(pt2d, np.float32).T.copy()
            if not np.all(np.isfinite(lm)):
                raise DataSourceError(f"{mat}: non-finite pt2d coordinates")
            out.append(FaceSample(str(img), lm))
            found += 1
        if not found:
            raise DataSourceError(f"{d}: no .jpg/.mat pair found (expected the 300W-LP layout)")
    return out


#: arrays ``aflw_wild/annotations.npz`` must hold, with their shapes (N faces, 21 points)
AFLW_ARRAYS = {"names": ("N",), "pts21_crop": ("N", 21, 2), "roi_box": ("N", 4), "yaw": ("N",)}
AFLW_POINTS = 21
#: side of the AFLW crops (3DDFA's AFLW protocol crops); ``pts21_crop`` are pixels of these crops
AFLW_CROP_SIZE = 120
#: a visible point further than this (crop pixels) outside its 120-px crop is an annotation the crop does not hold
AFLW_OUTSIDE_MARGIN = 6.0


def list_aflw_wild(root: str | os.PathLike, dropped: list | None = None) -> list[FaceSample]:
    """AFLW in-the-wild crops (``root/crops/NAME``, ``root/annotations.npz``) → faces with 21 crop-pixel points
    (NaN = not visible), ``landmark_set="aflw21"``, the whole crop as roi and the yaw, in the file's order.

    A missing or malformed ``annotations.npz`` (a missing array, wrong shapes, fewer than 4 visible points in a
    face) → :class:`DataSourceError` in one line. Faces whose visible points lie outside their crop (by more
    than :data:`AFLW_OUTSIDE_MARGIN` px: the crop does not hold the annotated face) are left out and their names
    appended to ``dropped``. Crop files are not opened here (an unreadable one is skipped when loading)."""
    root = Path(root)
    _need_dir(root, "AFLW in-the-wild crops: crops/*.jpg and annotations.npz")
    path = root / "annotations.npz"
    if not path.is_file():
        raise DataSourceError(f"{path}: not found (expected the AFLW annotations: names, pts21_crop, roi_box, yaw)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in AFLW_ARRAYS if k in z.files}
    except (ValueError, OSError, EOFError) as exc:
        raise DataSourceError(f"{path}: cannot read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                              "; expected an .npz with names, pts21_crop, roi_box, yaw") from None
    missing = [k for k in AFLW_ARRAYS if k not in arrays]
    if missing:
        raise DataSourceError(f"{path}: missing array(s) {', '.join(missing)} (expected {', '.join(AFLW_ARRAYS)})")
    n = len(arrays["names"])
    for key, dims in AFLW_ARRAYS.items():
        want = tuple(n if d == "N" else d for d in dims)
        if arrays[key].shape != want:
            raise DataSourceError(f"{path}: {key} has shape {arrays[key].shape}, expected {want}")
    if n == 0:
        raise DataSourceError(f"{path}: holds no faces")
    pts = arrays["pts21_crop"].astype(np.float32)
    visible = np.isfinite(pts).all(axis=-1)
    if np.isinf(pts).any() or (np.isnan(pts).any(axis=-1) != ~visible).any():
        raise DataSourceError(f"{path}: pts21_crop must hold finite (x, y) pairs or NaN pairs (not visible)")
    few = np.flatnonzero(visible.sum(axis=1) < 4)
    if len(few):
        raise DataSourceError(f"{path}: face {arrays['names'][few[0]]} has {int(visible[few[0]].sum())} visible "
                              "points; every face needs at least 4")
    crops = root / "crops"
    _need_dir(crops, "the 120x120 AFLW crops named in annotations.npz")
    with np.errstate(invalid="ignore"):
        outside = ((pts < -AFLW_OUTSIDE_MARGIN) | (pts > AFLW_CROP_SIZE + AFLW_OUTSIDE_MARGIN)).any(axis=-1) & visible
    crop_roi = np.array([0.0, 0.0, AFLW_CROP_SIZE, AFLW_CROP_SIZE], np.float32)
    out = []
    for i in range(n):
        name = str(arrays["names"][i])
        if outside[i].any():
            if dropped is not None:
                dropped.append(name)
            continue
        out.append(FaceSample(str(crops / name), pts[i], "aflw21", crop_roi, float(arrays["yaw"][i])))
    return out


def split_holdout(samples: Sequence, every: int = 10, offset: int = 0) -> tuple[list, list]:
    """Deterministic split: sorted by image file name (then path), every ``every``-th from ``offset`` is held out.

    Returns ``(train, holdout)``, each in the input order. ``every <= 0`` holds nothing out.
    """
    if every <= 0:
        return list(samples), []
    if not 0 <= offset < every:
        raise ValueError(f"holdout offset must be in [0, {every}), got {offset}")
    order = sorted(range(len(samples)), key=lambda i: (Path(samples[i].image_path).name, samples[i].image_path))
    held = {i for rank, i in enumerate(order) if rank % every == offset}
    return ([s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held])


def _load_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataSourceError(f"{path}: parameter file not found")
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DataSourceError(f"{path}: cannot read .npy ({exc})") from None
    if path.suffix.lower() == ".pkl":
        return np.asarray(load_pickle(path, DataSourceError))  # the restricted unpickler: numpy arrays only
    raise DataSourceError(f"{path}: expected a .npy or .pkl parameter file")


def load_whitening(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (62,), std (62,))`` of a whitening file (:func:`tf2dasl.io.morphable_files.read_whitening`)."""
    return read_whitening(path, DataSourceError)


def list_3ddfa_params(root: str | os.PathLike, list_file: str | os.PathLike, params_file: str | os.PathLike,
                      whitened: bool = False, whitening: str | os.PathLike | None = None) -> list[ParamSample]:
    """3DDFA's training layout → :class:`ParamSample` with **raw** parameters ``(62,)``.

    ``list_file``: one crop file name per line, relative to ``root`` (3DDFA: ``train_aug_120x120.list.train``).
    ``params_file``: ``(N, 62)`` in the list's order, ``.npy`` or ``.pkl`` (3DDFA: ``param_all_norm.pkl``).
    ``whitened=True``: the file holds ``(p - mean) / std`` (3DDFA v1's ``param_all_norm.pkl`` does);
    ``whitening`` names the ``.pkl`` holding that mean/std (3DDFA v1: ``train.configs/param_whitening.pkl``)
    and the parameters are un-whitened here.
    """
    root, list_file = Path(root), Path(list_file)
    _need_dir(root, "the folder of 3DDFA's 120x120 training crops")
    if not list_file.is_file():
        raise DataSourceError(f"{list_file}: list file not found (one crop file name per line)")
    names = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
    if not names:
        raise DataSourceError(f"{list_file}: empty list file")
    params = _load_array(Path(params_file))
    if params.ndim != 2 or params.shape[1] != NUM_PARAMS:
        raise DataSourceError(f"{params_file}: expected an (N, 62) parameter array, found shape {params.shape}")
    if len(params) != len(names):
        raise DataSourceError(f"{params_file}: holds {len(params)} parameter rows but {list_file} lists "
                              f"{len(names)} crops")
    params = params.astype(np.float32)
    if whitened:
        if whitening is None:
            raise DataSourceError(f"{params_file}: whitened parameters need the whitening file "
                                  "(3DDFA v1: train.configs/param_whitening.pkl)")
        mean, std = load_whitening(whitening)
        params = params * std + mean
    if not np.all(np.isfinite(params)):
        raise DataSourceError(f"{params_file}: non-finite parameters")
    return [ParamSample(str(root / n), params[i]) for i, n in enumerate(names)]
