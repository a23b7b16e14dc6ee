"""The ``data.profiled`` section of a training config: which training faces are profiled, into which views, how the
photo around them is warped, and how the views feed training. Mapped from YAML by :mod:`tf2dasl.io.yaml_config`;
its parts are :class:`~.selection.SelectConfig`, :class:`~.poses.PoseConfig` and
:class:`~.surroundings.SurroundConfig` (beside the code they configure, which runs without TensorFlow).

The source faces are the training config's own in-the-wild training faces (``data.wild``: its 300-W folders without
their hold-out, AFLW without its validation split), so no held-out face is ever profiled.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..data.augment import AugmentConfig
from ..data.data_config import LabelledFeedConfig
from .poses import PoseConfig
from .selection import SelectConfig
from .surroundings import SurroundConfig

#: bump when a change of the code changes the views made from the same settings (it is part of the cache key)
PROFILE_FORMAT = 2
#: what an optional refinement to the manual 68 points moves (300-W faces; tf2dasl.profiling.refine)
REFINE_MODES = ("none", "expression", "shape")


def _colour_only() -> AugmentConfig:
    """Profiled views carry their pose and crop jitter already: colour jitter only (as every 3D-labelled crop)."""
    return AugmentConfig(scale=(1.0, 1.0), shift=0.0, rotation=0.0, flip=0.0)


@dataclass
class ProfiledDataConfig(LabelledFeedConfig):
    """Profiled faces as a 3D-labelled training source (see the module doc).

    ``refine``: after the selection, move a 300-W face's fit towards its manual 68 points: ``none``,
    ``expression`` (camera and expression) or ``shape`` (also the identity), under ``refine_prior``
    (:mod:`tf2dasl.profiling.refine`); the jaw's 17 points only with ``refine_jaw`` (300-W's jaw follows the visible
    outline, which on the near-frontal sources is close to the 3D jaw). Made once per teacher and settings under
    ``folder`` (``<folder>/profiled-<key>``, reused by every later run),
    with ``workers`` processes, ``shard_sources`` source faces per resumable shard, JPEG ``quality``; ``seed``
    draws the poses. The feed settings of :class:`~tf2dasl.data.data_config.LabelledFeedConfig`: ``batch_size``
    views per training step (16 here), ``augment`` colour jitter only."""

    select: SelectConfig = field(default_factory=SelectConfig)
    poses: PoseConfig = field(default_factory=PoseConfig)
    surround: SurroundConfig = field(default_factory=SurroundConfig)
    refine: str = "none"
    refine_prior: float = 1.0
    refine_jaw: bool = False
    seed: int = 0
    folder: str = "${TF2DASL_CACHE}/profiled"
    workers: int = 2
    shard_sources: int = 64
    quality: int = 95
    batch_size: int = 16
    augment: AugmentConfig = field(default_factory=_colour_only)

    def validate(self) -> None:
        super().validate()
        for part in (self.select, self.poses, self.surround):
            part.validate()
        if self.workers < 1 or self.shard_sources < 1:
            raise ValueError(f"workers and shard_sources must be >= 1, got {self.workers}, {self.shard_sources}")
        if self.refine not in REFINE_MODES:
            raise ValueError(f"refine must be one of {', '.join(REFINE_MODES)}, got {self.refine!r}")
        if self.refine_jaw and self.refine == "none":
            raise ValueError("refine_jaw needs refine: expression or shape")
        if not self.refine_prior > 0:
            raise ValueError(f"refine_prior must be > 0, got {self.refine_prior}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be a JPEG quality in [1, 100], got {self.quality}")

    def generation(self) -> dict:
        """The settings that decide the views (part of the cache key): not where, how fast or how they train."""
        out = {"format": PROFILE_FORMAT, "select": asdict(self.select), "poses": asdict(self.poses),
               "surround": asdict(self.surround), "seed": self.seed, "quality": self.quality}
        if self.refine != "none":        # keys of sets made before refinement existed stay valid
            out.update(refine=self.refine, refine_prior=self.refine_prior)
            if self.refine_jaw:
                out.update(refine_jaw=True)
        return out
