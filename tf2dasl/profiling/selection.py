"""Which candidate faces are profiled: those where the teacher is reliable.

A face is kept when its flip-averaged fit (:meth:`.fitting.MeshFitter.flip_average`) is near-frontal (|yaw| and
|pitch| within :class:`SelectConfig`'s limits) and its points agree with the manual annotation: the mean
distance over the visible annotated points, over ``sqrt(w h)`` of their box (the NME of the training hold-outs),
at most ``max_nme`` percent. A 300-W face is compared on its 68 points, an AFLW face on its 21 through the model
points ``tf2dasl fit-landmarks`` fitted (the mean of two mesh vertices each).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.correspondence import visible_face_size
from ..geometry.camera import model_to_crop
from ..geometry.conventions import CropConvention
from ..geometry.morphable_model import EXPRESSION, POSE, SHAPE, MorphableModel
from ..geometry.pose import params_to_pose

#: why a candidate was not kept (:attr:`Selection.reasons`)
REASONS = ("pose", "points")


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


def model_points(mm: MorphableModel, params: np.ndarray, pairs: np.ndarray | None, size: int,
                 convention: CropConvention) -> np.ndarray:
    """Crop pixels ``(B, K, 2)`` of the 68 landmarks (``pairs`` None) or of model points ``pairs (K, 2)`` (the mean
    of two dense vertices each) for raw params ``(B, 62)``."""
    params = np.asarray(params, np.float32)
    if pairs is None:
        return model_to_crop(mm.landmarks(params), size, convention)[..., :2]
    mm.require_dense()
    pts = 0.0
    for j in (0, 1):
        rows = (np.asarray(pairs)[:, j, None] * 3 + np.arange(3)).reshape(-1)
        shape = (mm.u[rows] + params[:, SHAPE] @ mm.w_shp[rows].T + params[:, EXPRESSION] @ mm.w_exp[rows].T)
        pts = pts + shape.reshape(len(params), -1, 3) / 2
    cam = params[:, POSE].reshape(-1, 3, 4)
    world = pts @ np.transpose(cam[:, :, :3], (0, 2, 1)) + cam[:, None, :, 3]
    return model_to_crop(world, size, convention)[..., :2]


def point_nme(predicted: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(B,)`` percent: mean distance over the visible points of ``points (B, K, 2)`` (NaN = not visible) over
    ``sqrt(w h)`` of their box."""
    d = np.linalg.norm(np.asarray(predicted, np.float64) - points, axis=-1)
    return 100.0 * np.nanmean(d, axis=1) / visible_face_size(points)


@dataclass(frozen=True)
class Selection:
    """``keep (N,)`` bool, the fits' ``pose (N, 3)`` (yaw, pitch, roll degrees), ``nme (N,)`` percent, and how many
    candidates each rule of :data:`REASONS` turned away (``reasons``; a face failing both counts under pose)."""

    keep: np.ndarray
    pose: np.ndarray
    nme: np.ndarray
    reasons: dict


def select_sources(params: np.ndarray, predicted: np.ndarray, points: np.ndarray, cfg: SelectConfig) -> Selection:
    """The faces to profile among candidates with flip-averaged ``params (N, 62)``, their predicted points
    ``(N, K, 2)`` and manual ``points (N, K, 2)`` (crop pixels, NaN = not visible)."""
    pose = params_to_pose(params)
    frontal = (np.abs(pose[:, 0]) <= cfg.max_yaw) & (np.abs(pose[:, 1]) <= cfg.max_pitch)
    nme = point_nme(predicted, points)
    agree = nme <= cfg.max_nme
    return Selection(frontal & agree, pose, nme,
                     {"pose": int((~frontal).sum()), "points": int((frontal & ~agree).sum())})
