"""Raw parameters → points in each frame: the one decode of tf2dasl (numpy).

``Decoder(mm, size, convention)`` maps raw parameters ``(B, 62)`` through the frames named in
:mod:`tf2dasl.geometry`: the **model frame** (the morphable model's posed shape, y up), **crop pixels** (the crop
convention's flip and offsets, :func:`~tf2dasl.geometry.camera.model_to_crop`) and **image pixels** (through each
face's roi box, :func:`~tf2dasl.geometry.camera.crop_to_image`), for the 68 landmarks or the dense mesh. Every
numpy caller — the reconstructor, evaluation, training's validation and teacher, the exports' checks — decodes
here; the TensorFlow twin is :class:`tf2dasl.models.morphable.MorphableLayer` (tested against this one).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import crop_to_image, model_to_crop
from .conventions import CROP_OFFSET_V2, CropConvention, get_convention
from .morphable_model import MorphableModel
from .pose import params_to_pose


@dataclass(frozen=True, eq=False)
class Decoder:
    """``mm``: the morphable model the parameters belong to; ``size``: the crop side they were regressed in;
    ``convention``: the crop convention (a :class:`CropConvention` or its name)."""

    mm: MorphableModel
    size: int = 120
    convention: CropConvention = CROP_OFFSET_V2

    def __post_init__(self):
        if isinstance(self.convention, str):
            object.__setattr__(self, "convention", get_convention(self.convention))
        object.__setattr__(self, "size", int(self.size))

    def model_points(self, params: np.ndarray, dense: bool = False) -> np.ndarray:
        """Raw params ``(B, 62)`` → the 68 landmarks (``dense``: every vertex) in the model frame ``(B, N, 3)``."""
        return self.mm.vertices(np.asarray(params, np.float32).reshape(-1, np.shape(params)[-1]), dense=dense)

    def crop_points(self, params: np.ndarray, dense: bool = False) -> np.ndarray:
        """Raw params ``(B, 62)`` → points in crop pixels ``(B, N, 3)`` (0-based, y down)."""
        return model_to_crop(self.model_points(params, dense), self.size, self.convention)

    def image_points(self, params: np.ndarray, roi_boxes: np.ndarray, dense: bool = False) -> np.ndarray:
        """Raw params ``(B, 62)`` of the crops of ``roi_boxes (B, 4)`` → points in image pixels ``(B, N, 3)`` (z
        scaled by the roi box like x and y)."""
        return crop_to_image(self.crop_points(params, dense), roi_boxes, self.size)

    def landmarks(self, params: np.ndarray, roi_boxes: np.ndarray | None = None) -> np.ndarray:
        """The 68 landmarks ``(B, 68, 3)``: crop pixels, or image pixels through the crops' ``roi_boxes (B, 4)``."""
        return self.crop_points(params) if roi_boxes is None else self.image_points(params, roi_boxes)

    def vertices(self, params: np.ndarray, roi_boxes: np.ndarray | None = None) -> np.ndarray:
        """The dense mesh ``(B, V, 3)``: crop pixels, or image pixels when the crops' ``roi_boxes (B, 4)`` are given."""
        if roi_boxes is None:
            return self.crop_points(params, dense=True)
        return self.image_points(params, roi_boxes, dense=True)

    @staticmethod
    def pose(params: np.ndarray) -> np.ndarray:
        """Raw params ``(B, 62)`` → ``(B, 3)`` yaw, pitch, roll in degrees."""
        return params_to_pose(params)
