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
from ..data.landmark_sets import AFLW_21, LANDMARKS_68, PointLayout
from ..geometry.conventions import CropConvention
from ..geometry.decoder import Decoder
from ..geometry.morphable_model import MorphableModel
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


class ModelPoints:
    """The teacher's points of candidates in their crops, to compare with the manual ones: the 68 landmarks of a
    300-W face, AFLW's 21 model points ``aflw_points (21, 2)`` (mesh-vertex pairs, ``tf2dasl fit-landmarks``) of
    an AFLW face — one decoder of the :class:`~tf2dasl.data.landmark_sets.PointLayout` of both, built once."""

    def __init__(self, mm: MorphableModel, aflw_points: np.ndarray | None, size: int, convention: CropConvention):
        extra = {} if aflw_points is None else {AFLW_21.name: np.asarray(aflw_points)}
        self.layout = PointLayout((LANDMARKS_68, AFLW_21) if extra else (LANDMARKS_68,), extra)
        self.decoder = Decoder(self.layout.point_model(mm), size, convention)

    def __call__(self, params: np.ndarray) -> np.ndarray:
        """Raw params ``(B, 62)`` → crop pixels ``(B, P, 2)`` of the layout's slots (:meth:`slots` picks a set's)."""
        return self.decoder.crop_points(params)[..., :2]

    def slots(self, landmark_set: str) -> slice:
        """The slots of ``landmark_set`` (``"68"`` or ``"aflw21"``) among the ``P`` points."""
        return self.layout.slots(landmark_set)


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
