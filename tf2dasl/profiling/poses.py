"""The poses a source face is shown in: which photo (as taken or mirrored), yaw, pitch, roll and crop jitter.

Every draw comes from ``numpy.random.default_rng([seed, source index])``: a face's views do not depend on which
worker makes them, in which order, or whether the run was interrupted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import PoseConfig
from .views import ViewPose


@dataclass(frozen=True)
class PlannedView:
    """A view to make: from the ``mirrored`` photo or not, in ``pose``."""

    mirrored: bool
    pose: ViewPose


def plan_views(source_pose: np.ndarray, cfg: PoseConfig, seed: int, index: int) -> list[PlannedView]:
    """``cfg.views`` views of the source face number ``index`` whose fitted pose is ``source_pose (3,)``
    (yaw, pitch, roll degrees; see :class:`~tf2dasl.profiling.config.PoseConfig`)."""
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
