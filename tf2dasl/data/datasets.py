"""The data sets a training config names (``data.wild``, ``data.labelled``): listed, split into training and
held-out faces, loaded — what :mod:`.pipeline` turns into batches."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .augment import AugmentConfig
from .data_config import AflwDataConfig, DataError, LabelledDataConfig, WildDataConfig, split_counts
from .landmark_sets import LANDMARK_SETS, LANDMARKS_68, PointLayout, read_points_file
from .loading import LabelledCrops, WildFaces, load_labelled_crops, load_wild_faces
from .sources import FaceSample, list_3ddfa_params, list_300wlp, list_aflw_wild, list_pts_faces, split_holdout


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Whole batches in an epoch of ``n`` samples (the remainder is dropped)."""
    return n // batch_size


@dataclass(eq=False)
class WildSource:
    """One source of a wild batch: loaded ``faces``, ``count`` faces per batch, their ``augment`` config."""

    faces: WildFaces
    count: int
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    #: per-face sampling weights (None: every face once per epoch, shuffled)
    weights: np.ndarray | None = None

    @property
    def landmark_set(self) -> str:
        return self.faces.landmark_set


@dataclass(eq=False)
class WildData:
    """The in-the-wild data of a config: ``sources`` (loaded, with their per-batch counts), the point ``layout``
    of their landmarks, and each source's held-out faces ``holdout[set name]`` (300-W's hold-out, AFLW's
    validation split; absent when none)."""

    sources: list[WildSource]
    layout: PointLayout
    holdout: dict[str, WildFaces]

    def steps_per_epoch(self) -> int:
        """One pass over the source that takes the most steps."""
        return max(steps_per_epoch(len(s.faces), s.count) for s in self.sources)


def list_68(cfg: WildDataConfig) -> tuple[list[FaceSample], list[FaceSample]]:
    """The 68-point faces of ``cfg`` → ``(train, holdout)``."""
    if cfg.holdout_from:  # split only these folders, use the others whole
        from_dirs = {Path(p).resolve() for p in cfg.holdout_from}
        train, held = [], []
        for folder in cfg.pts_folders:
            faces = list_pts_faces([folder])
            if Path(folder).resolve() in from_dirs:
                a, b = split_holdout(faces, cfg.holdout_every, cfg.holdout_offset)
                train, held = train + a, held + b
            else:
                train += faces
        if cfg.lp_folders:
            train += list_300wlp(cfg.lp_folders)
        return train, held
    samples = (list_pts_faces(cfg.pts_folders) if cfg.pts_folders else []) + \
        (list_300wlp(cfg.lp_folders) if cfg.lp_folders else [])
    return split_holdout(samples, cfg.holdout_every, cfg.holdout_offset)


def list_aflw(cfg: AflwDataConfig) -> tuple[list[FaceSample], list[FaceSample], list[str]]:
    """AFLW's faces of ``cfg`` → ``(train, validation split, names left out for annotations outside the crop)``."""
    dropped: list[str] = []
    faces = list_aflw_wild(cfg.root, dropped)
    train, val = split_holdout(faces, cfg.val_every, cfg.val_offset)
    return train, val, dropped


def yaw_weights(yaws: np.ndarray, balance: float) -> np.ndarray | None:
    """Sampling weights ``(N,)`` that draw each of 3DDFA's |yaw| bins (0-30, 30-60, > 60) in proportion to
    ``count ** (1 - balance)``: 0 = as the data comes (None), 1 = every bin equally often."""
    if balance <= 0:
        return None
    a = np.abs(np.asarray(yaws, np.float64))
    bins = np.digitize(a, [30.0, 60.0], right=True)
    counts = np.bincount(bins, minlength=3).astype(np.float64)
    return counts[bins] ** -balance


def load_wild_data(cfg: WildDataConfig, log=print) -> WildData:
    """List, split and load the in-the-wild sources of ``cfg`` (counts per batch from their weights)."""
    counts = split_counts(cfg.batch_size, cfg.source_weights())
    sets, model_points, sources, holdout = [LANDMARKS_68], {}, [], {}
    if "68" in counts:
        train, held = list_68(cfg)
        if not train:
            raise DataError("no in-the-wild 68-point faces left for training after the hold-out")
        kw = dict(cache=cfg.cache, cache_size=cfg.cache_size, cache_margin=cfg.cache_margin,
                  roi_scale=cfg.augment.roi_scale, cache_limit_mb=cfg.cache_limit_mb)
        faces = load_wild_faces(train, **kw)
        log(faces.stats.summary("68-point faces (train)"))
        sources.append(WildSource(faces, counts["68"], cfg.augment))
        if held:
            holdout["68"] = load_wild_faces(held, **kw)
    if "aflw21" in counts:
        a = cfg.aflw
        model_points["aflw21"] = read_points_file(a.points_file, "aflw21")
        sets.append(LANDMARK_SETS["aflw21"])
        train, val, dropped = list_aflw(a)
        size = a.augment.size
        kw = dict(cache=a.cache, cache_size=size, cache_margin=1.0, cache_limit_mb=a.cache_limit_mb)
        faces = load_wild_faces(train, **kw)
        log(faces.stats.summary("AFLW faces (train)")
            + (f"; {len(dropped)} left out (annotations outside their crop)" if dropped else ""))
        sources.append(WildSource(faces, counts["aflw21"], a.augment,
                                  yaw_weights(np.array([s.yaw for s in faces.samples]), a.yaw_balance)))
        if val:
            holdout["aflw21"] = load_wild_faces(val, **kw)
    return WildData(sources, PointLayout(tuple(sets), model_points), holdout)


def load_labelled(cfg: LabelledDataConfig) -> LabelledCrops:
    """List and load the 3D-labelled crops of ``cfg``."""
    if not (cfg.root and cfg.list_file and cfg.params_file):
        raise DataError("labelled data needs root, list_file and params_file")
    samples = list_3ddfa_params(cfg.root, cfg.list_file, cfg.params_file, cfg.params_whitened,
                                cfg.whitening_file or None)
    return load_labelled_crops(samples, cfg.augment.size, cfg.cache, cfg.cache_limit_mb)
