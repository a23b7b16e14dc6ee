"""The ``data.profiled`` section of a training config: which training faces are profiled, into which views, how the
photo around them is warped, and how the views feed training. Mapped from YAML by :mod:`tf2dasl.config`.

The source faces are the training config's own in-the-wild training faces (``data.wild``: its 300-W folders without
their hold-out, AFLW without its validation split), so no held-out face is ever profiled.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..data.augment import AugmentConfig
from .surroundings import SurroundConfig

#: bump when a change of the code changes the views made from the same settings (it is part of the cache key)
PROFILE_FORMAT = 2
#: what an optional refinement to the manual 68 points moves (300-W faces; tf2dasl.profiling.refine)
REFINE_MODES = ("none", "expression", "shape")


@dataclass
class SelectConfig:
    """Where the teacher is reliable: its flip-averaged fit within ``max_yaw`` / ``max_pitch`` degrees of frontal,
    and its landmarks within ``max_nme`` (% of ``sqrt(w h)`` of the annotated points' box, visible points) of the
    manual ones. AFLW faces whose annotated |yaw| exceeds ``aflw_max_yaw`` are not even tried; an AFLW face needs
    ``aflw_min_visible`` visible points."""

    max_yaw: float = 30.0
    max_pitch: float = 30.0
    max_nme: float = 5.0
    aflw_max_yaw: float = 30.0
    aflw_min_visible: int = 12

    def validate(self) -> None:
        for key in ("max_yaw", "max_pitch", "max_nme", "aflw_max_yaw"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        if self.aflw_min_visible < 1:
            raise ValueError(f"aflw_min_visible must be >= 1, got {self.aflw_min_visible}")


@dataclass
class PoseConfig:
    """The views of each source face: ``views`` per face, their |yaw| spread evenly over ``yaw`` (one random yaw in
    each of ``views`` equal slices), pitch and roll within ``pitch`` / ``roll`` degrees of the source's; half of
    a share ``mirror`` of them made from the mirror image of the photo. A source turned more than ``turn_from`` degrees turns
    further its own way (the side the photo shows best comes into view); a frontal one either way. Each view's
    crop is jittered as training jitters crops: side times ``scale``, centre moved up to ``shift`` roi sides."""

    views: int = 4
    yaw: tuple[float, float] = (20.0, 90.0)
    pitch: float = 15.0
    roll: float = 10.0
    mirror: float = 0.5
    turn_from: float = 10.0
    scale: tuple[float, float] = (0.95, 1.05)
    shift: float = 0.03

    def validate(self) -> None:
        if self.views < 1:
            raise ValueError(f"views must be >= 1, got {self.views}")
        lo, hi = self.yaw
        if not 0 <= lo <= hi <= 90:
            raise ValueError(f"yaw must be [low, high] with 0 <= low <= high <= 90 (|yaw| in degrees), got {self.yaw}")
        for key in ("pitch", "roll", "turn_from", "shift"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if not 0 <= self.mirror <= 1:
            raise ValueError(f"mirror must be in [0, 1], got {self.mirror}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be [low, high] with 0 < low <= high, got {self.scale}")


def _colour_only() -> AugmentConfig:
    """Profiled views carry their pose and crop jitter already: colour jitter only (as every 3D-labelled crop)."""
    return AugmentConfig(scale=(1.0, 1.0), shift=0.0, rotation=0.0, flip=0.0)


@dataclass
class ProfiledDataConfig:
    """Profiled faces as a 3D-labelled training source (see the module doc).

    ``refine``: after the selection, move a 300-W face's fit towards its manual 68 points (jaw excluded): ``none``,
    ``expression`` (camera and expression) or ``shape`` (also the identity), under ``refine_prior``
    (:mod:`tf2dasl.profiling.refine`). Made once per teacher and settings under ``folder``
    (``<folder>/profiled-<key>``, reused by every later run),
    with ``workers`` processes, ``shard_sources`` source faces per resumable shard, JPEG ``quality``; ``seed``
    draws the poses. ``batch_size`` views per training step, ``cache``/``cache_limit_mb`` as for 3D-labelled crops,
    ``augment`` their colour jitter."""

    select: SelectConfig = field(default_factory=SelectConfig)
    poses: PoseConfig = field(default_factory=PoseConfig)
    surround: SurroundConfig = field(default_factory=SurroundConfig)
    refine: str = "none"
    refine_prior: float = 1.0
    seed: int = 0
    folder: str = "${TF2DASL_CACHE}/profiled"
    workers: int = 2
    shard_sources: int = 64
    quality: int = 95
    batch_size: int = 16
    cache: str = "auto"
    cache_limit_mb: int = 2048
    augment: AugmentConfig = field(default_factory=_colour_only)

    def validate(self) -> None:
        from ..data.config import _check_common

        for part in (self.select, self.poses, self.surround):
            part.validate()
        _check_common(self.cache, self.batch_size)
        if self.workers < 1 or self.shard_sources < 1:
            raise ValueError(f"workers and shard_sources must be >= 1, got {self.workers}, {self.shard_sources}")
        if self.refine not in REFINE_MODES:
            raise ValueError(f"refine must be one of {', '.join(REFINE_MODES)}, got {self.refine!r}")
        if not self.refine_prior > 0:
            raise ValueError(f"refine_prior must be > 0, got {self.refine_prior}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be a JPEG quality in [1, 100], got {self.quality}")

    def generation(self) -> dict:
        """The settings that decide the views (part of the cache key): not where, how fast or how they train."""
        from dataclasses import asdict

        out = {"format": PROFILE_FORMAT, "select": asdict(self.select), "poses": asdict(self.poses),
               "surround": asdict(self.surround), "seed": self.seed, "quality": self.quality}
        if self.refine != "none":        # keys of sets made before refinement existed stay valid
            out.update(refine=self.refine, refine_prior=self.refine_prior)
        return out
