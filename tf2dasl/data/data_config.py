"""Data configs (the ``data:`` section of a training config), mapped from YAML by :mod:`tf2dasl.io.yaml_config`.

``wild``: in-the-wild faces with 2D landmarks only, from up to two sources mixed in every batch — 300-W style
folders / 300W-LP (68 points) and AFLW in-the-wild crops (21 points with visibility, ``wild.aflw``) — each with
its share of the batch (``weight``) and its own hold-out. ``labelled``: 3D-labelled crops in 3DDFA's layout.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import UserError
from .augment import AugmentConfig

CACHE_MODES = ("auto", "memory", "none")


class DataError(UserError):
    """A data set that cannot feed training (empty, smaller than a batch, bad option)."""


def aflw_augment() -> AugmentConfig:
    """AFLW crops hold little beyond the face (zero fill there): milder geometric jitter than 300-W's squares."""
    return AugmentConfig(scale=(0.95, 1.05), shift=0.03, rotation=10.0)


@dataclass
class AflwDataConfig:
    """AFLW in-the-wild crops with 21 manual points, NaN = not visible (``../shared/data/aflw_wild``).

    points_file: the YAML ``tf2dasl fit-landmarks`` writes — the model point (mesh vertices) of each of the 21
    points. weight: this source's share of every wild batch (relative to ``wild.weight``). val_every/val_offset:
    every n-th face sorted by name, from the offset, is the validation split (listed in the run folder, never
    trained on; 0 = none). The crops are kept in memory as they are (``cache: none`` decodes them at every
    visit). yaw_balance: 0 samples the faces as they come (half of AFLW is within 30 degrees of frontal); 1 draws
    each of 3DDFA's |yaw| bins (0-30, 30-60, > 60) equally often; in between, ``count ** (1 - yaw_balance)``."""

    root: str = ""
    points_file: str = ""
    weight: float = 1.0
    val_every: int = 0
    val_offset: int = 0
    yaw_balance: float = 0.0
    cache: str = "auto"
    cache_limit_mb: int = 2048
    augment: AugmentConfig = field(default_factory=aflw_augment)

    def validate(self) -> None:
        check_cache(self.cache)
        if not self.root:
            raise ValueError("root must name the AFLW crops folder (crops/ and annotations.npz)")
        if not self.points_file:
            raise ValueError("points_file must name the fitted AFLW point → mesh vertex YAML (tf2dasl fit-landmarks)")
        if not self.weight >= 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if not 0 <= self.yaw_balance <= 1:
            raise ValueError(f"yaw_balance must be in [0, 1], got {self.yaw_balance}")
        _check_split(self.val_every, self.val_offset, "val")


@dataclass
class WildDataConfig:
    """In-the-wild faces (2D landmarks only). pts_folders: 300-W style folders; lp_folders: 300W-LP
    ``.mat`` folders (68 points); holdout_every/offset: hold out every n-th of those faces (sorted by name) for
    validation (0 = none); weight: their share of every batch; aflw: AFLW's 21-point crops as a second source;
    batch_size: faces per step from all sources together; cache: auto | memory | none (see
    :mod:`tf2dasl.data.loading`)."""

    pts_folders: list[str] = field(default_factory=list)
    lp_folders: list[str] = field(default_factory=list)
    holdout_every: int = 0
    holdout_offset: int = 0
    #: folders (of ``pts_folders``) the hold-out is taken from; empty: from all faces together
    holdout_from: list[str] = field(default_factory=list)
    weight: float = 1.0
    aflw: AflwDataConfig | None = None
    batch_size: int = 8
    cache: str = "auto"
    cache_size: int = 256
    cache_margin: float = 2.0
    cache_limit_mb: int = 2048
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        check_common(self.cache, self.batch_size)
        if self.cache_size < 16 or self.cache_margin <= 0:
            raise ValueError("cache_size must be >= 16 and cache_margin positive")
        _check_split(self.holdout_every, self.holdout_offset, "holdout")
        if not self.weight >= 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")

    def source_weights(self) -> dict[str, float]:
        """The sources this config names, with their weights: ``"68"`` (pts/lp folders) and ``"aflw21"``."""
        out = {}
        if self.pts_folders or self.lp_folders:
            out["68"] = self.weight
        if self.aflw is not None:
            out["aflw21"] = self.aflw.weight
        return {k: w for k, w in out.items() if w > 0}


@dataclass
class LabelledFeedConfig:
    """How a stream of 3D-labelled crops feeds training (``data.labelled``, ``data.profiled``): ``batch_size`` crops
    per step, their ``cache`` (auto | memory | none, :mod:`tf2dasl.data.loading`) and ``cache_limit_mb``, their
    ``augment``ation."""

    batch_size: int = 8
    cache: str = "auto"
    cache_limit_mb: int = 2048
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        check_common(self.cache, self.batch_size)

    def feed(self) -> dict:
        """The feed settings alone (keyword arguments of any :class:`LabelledFeedConfig`)."""
        return {f.name: getattr(self, f.name) for f in fields(LabelledFeedConfig)}


@dataclass
class LabelledDataConfig(LabelledFeedConfig):
    """3D-labelled crops in 3DDFA's layout: ``root`` + ``list_file`` of crop names, ``params_file`` (N, 62);
    ``params_whitened``: the file holds whitened params (3DDFA v1's ``param_all_norm.pkl``: true) to be
    un-whitened with ``whitening_file`` (3DDFA v1: ``train.configs/param_whitening.pkl``); the feed settings of
    :class:`LabelledFeedConfig`."""

    root: str = ""
    list_file: str = ""
    params_file: str = ""
    params_whitened: bool = False
    whitening_file: str = ""

    def validate(self) -> None:
        super().validate()
        if self.params_whitened and not self.whitening_file:
            raise ValueError("params_whitened needs whitening_file (3DDFA v1: train.configs/param_whitening.pkl)")


def validate_augment(cfg: AugmentConfig) -> None:
    try:
        cfg.validate()
    except ValueError as exc:
        raise DataError(f"augmentation config: {exc}") from None


def check_common(cache: str, batch_size: int) -> None:
    """What every data config checks (wild, labelled, profiled): the cache mode and a positive batch size."""
    check_cache(cache)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")


def check_cache(mode: str) -> None:
    if mode not in CACHE_MODES:
        raise ValueError(f"cache must be one of {', '.join(CACHE_MODES)}, got {mode!r}")


def _check_split(every: int, offset: int, what: str) -> None:
    if every > 0 and not 0 <= offset < every:
        raise ValueError(f"{what}_offset must be in [0, {what}_every={every}), got {offset}")


def split_counts(batch_size: int, weights: dict[str, float]) -> dict[str, int]:
    """Faces per batch of each source: ``batch_size`` split by ``weights`` (largest remainder; every source with
    a positive weight gets at least one face, so a batch must hold at least one face per source)."""
    names = list(weights)
    if not names:
        raise DataError("no in-the-wild data: set pts_folders, lp_folders and/or aflw (with a weight > 0)")
    if batch_size < len(names):
        raise DataError(f"batch_size {batch_size} cannot hold a face of each of the {len(names)} sources")
    total = sum(weights.values())
    exact = {n: batch_size * weights[n] / total for n in names}
    counts = {n: max(1, int(exact[n])) for n in names}
    while sum(counts.values()) < batch_size:
        n = max(names, key=lambda k: exact[k] - counts[k])
        counts[n] += 1
    while sum(counts.values()) > batch_size:
        n = max((k for k in names if counts[k] > 1), key=lambda k: counts[k] - exact[k])
        counts[n] -= 1
    return counts
