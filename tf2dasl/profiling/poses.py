"""The poses a source face is shown in: which photo (as taken or mirrored), yaw, pitch, roll and crop jitter.

Every draw comes from ``numpy.random.default_rng([seed, source index])``: a face's views do not depend on which
worker makes them, in which order, or whether the run was interrupted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .views import ViewPose


@dataclass
class PoseConfig:
    """The views of each source face: ``views`` per face, their |yaw| spread evenly over ``yaw`` (one random yaw in
    each of ``views`` equal slices), pitch and roll within ``pitch`` / ``roll`` degrees of the source's; half of
    a share ``mirror`` of them made from the mirror image of the photo. A source turned more than ``turn_from``
    degrees turns further its own way (the side the photo shows best comes into view); a frontal one either way.
    Each view's crop is jittered as training jitters crops: side times ``scale``, centre moved up to ``shift`` roi
    sides."""

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


@dataclass(frozen=True)
class PlannedView:
    """A view to make: from the ``mirrored`` photo or not, in ``pose``."""

    mirrored: bool
    pose: ViewPose


def plan_views(source_pose: np.ndarray, cfg: PoseConfig, seed: int, index: int) -> list[PlannedView]:
    """``cfg.views`` views of the source face number ``index`` whose fitted pose is ``source_pose (3,)``
    (yaw, pitch, roll degrees; see :class:`PoseConfig`)."""
    rng = np.random.default_rng([int(seed), int(index)])
    n = cfg.views
    lo, hi = cfg.yaw
    yaws = lo + (hi - lo) * (rng.permutation(n) + rng.random(n)) / n          # one per equal slice, shuffled
    mirrored = rng.random(n) < cfg.mirror
    out = []
    for k in range(n):
        yaw, pitch, roll = (float(v) for v in source_pose)
        if mirrored[k]:
            yaw, roll = -yaw, -roll                                            # the mirror image's pose
        side = np.sign(yaw) if abs(yaw) > cfg.turn_from else (1.0 if rng.random() < 0.5 else -1.0)
        pose = ViewPose(yaw=float(side * yaws[k]), pitch=pitch + float(rng.uniform(-cfg.pitch, cfg.pitch)),
                        roll=roll + float(rng.uniform(-cfg.roll, cfg.roll)),
                        scale=float(rng.uniform(*cfg.scale)),
                        shift=tuple(float(v) for v in rng.uniform(-cfg.shift, cfg.shift, 2)))
        out.append(PlannedView(bool(mirrored[k]), pose))
    return out
