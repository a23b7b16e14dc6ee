"""``FaceModel``: a regressor together with everything needed to use it (spec, morphable model).

The spec is what a model directory's ``model.json`` holds (see :mod:`tf2dasl.io.model_dir`);
no file I/O here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import tensorflow as tf

from .geometry.camera import model_to_crop
from .geometry.conventions import get_convention
from .geometry.landmark_map import landmark_map
from .geometry.morphable_model import MorphableModel
from .geometry.pose import params_to_pose
from .models.regressor import Regressor


@dataclass
class ModelSpec:
    """How to build and feed a regressor. Input crops are ``(B, input_size, input_size, 3)`` uint8 in
    ``color_order``, normalised as ``(x - norm_mean) * norm_scale``; with ``channels == 4`` the landmark map
    (already in [-1, 1]) is the 4th channel. ``crop_convention`` names the model-frame → crop-pixel map."""

    name: str = "model"
    backbone: str = "mobilenet_v1"
    width: float = 1.0
    input_size: int = 120
    channels: int = 3
    num_params: int = 62
    color_order: str = "BGR"
    norm_mean: float = 127.5
    norm_scale: float = 1.0 / 128.0
    crop_convention: str = "3ddfa_v2"
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model spec key(s) {unknown}")
        return cls(**d)

    def build_regressor(self) -> Regressor:
        reg = Regressor(self.backbone, self.width, self.input_size, self.channels, self.num_params, name="regressor")
        reg.build()
        return reg


class FaceModel:
    """A regressor with its spec and morphable model; turns crops into parameters and landmarks.

    ``predict_*`` methods take crops ``(B, S, S, 3)`` uint8 in the model's colour order.
    """

    def __init__(self, spec: ModelSpec, regressor: Regressor, mm: MorphableModel):
        self.spec, self.regressor, self.mm = spec, regressor, mm
        self.convention = get_convention(spec.crop_convention)
        signature = [tf.TensorSpec([None, spec.input_size, spec.input_size, spec.channels], tf.float32)]
        self._forward = tf.function(lambda x: self.regressor(x, training=False), input_signature=signature)

    # -------------------------------------------------------------- input
    def normalize(self, crops: np.ndarray, maps: np.ndarray | None = None) -> np.ndarray:
        """uint8 crops ``(B, S, S, 3)`` (+ maps ``(B, S, S)``) → network input ``(B, S, S, C)`` float32."""
        x = (np.asarray(crops, np.float32) - self.spec.norm_mean) * self.spec.norm_scale
        if self.spec.channels == 4:
            if maps is None:
                maps = landmark_map(None, self.spec.input_size, batch=x.shape[0])
            x = np.concatenate([x, np.asarray(maps, np.float32)[..., None]], axis=-1)
        return x

    # -------------------------------------------------------------- inference
    def predict_whitened(self, crops: np.ndarray, maps: np.ndarray | None = None, batch_size: int = 256) -> np.ndarray:
        """``(B, S, S, 3)`` uint8 crops → ``(B, 62)`` whitened params (one forward pass)."""
        x = self.normalize(crops, maps)
        if len(x) == 0:
            return np.zeros((0, self.spec.num_params), np.float32)
        out = [self._forward(tf.constant(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32)

    def predict_params(self, crops: np.ndarray, maps: np.ndarray | None = None, passes: int = 2) -> np.ndarray:
        """``(B, S, S, 3)`` uint8 crops → ``(B, 62)`` raw params. A 4-channel model runs its two passes
        (empty map, then the map of its own landmarks) unless ``maps`` are given or ``passes == 1``."""
        params = self.mm.unwhiten(self.predict_whitened(crops, maps))
        if self.spec.channels == 4 and maps is None and passes > 1 and len(params):
            maps = landmark_map(self.landmarks_crop(params), self.spec.input_size)
            params = self.mm.unwhiten(self.predict_whitened(crops, maps))
        return params

    def landmarks_crop(self, params: np.ndarray) -> np.ndarray:
        """Raw params ``(B, 62)`` → 68 landmarks in crop pixels ``(B, 68, 3)``."""
        return model_to_crop(self.mm.landmarks(params), self.spec.input_size, self.convention)

    def vertices_crop(self, params: np.ndarray) -> np.ndarray:
        """Raw params ``(B, 62)`` → dense vertices in crop pixels ``(B, N, 3)``."""
        return model_to_crop(self.mm.vertices(params, dense=True), self.spec.input_size, self.convention)

    @staticmethod
    def pose(params: np.ndarray) -> np.ndarray:
        """Raw params ``(B, 62)`` → ``(B, 3)`` yaw, pitch, roll (degrees)."""
        return params_to_pose(params)
