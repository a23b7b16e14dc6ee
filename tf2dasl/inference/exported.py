"""What the three runtimes of an export directory share: ``export.json``'s model description (name, crop side,
channels, crop convention, normalisation, whitening) behind the predictor contract."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Predictor
from .crops import normalize_crops
from .export_dir import read_export


class ExportedPredictor(Predictor):
    """A predictor over one artifact of ``export_dir`` (``label``: e.g. ``"tflite float16"``; ``meta``: its
    export.json when already read)."""

    def __init__(self, export_dir: str | Path, label: str, meta: dict | None = None):
        self.export_dir = Path(export_dir)
        self.meta = meta = read_export(self.export_dir) if meta is None else meta
        spec = meta["spec"]
        self.model_name = meta["model_name"]
        super().__init__(f"{self.model_name} ({label})", int(spec["input_size"]), int(spec.get("channels", 3)),
                         spec.get("crop_convention", "3ddfa_v2"))
        norm = meta["normalization"]
        self.norm_mean, self.norm_scale = float(norm["mean"]), float(norm["scale"])
        self.param_mean = np.asarray(meta["whitening"]["mean"], np.float32)
        self.param_std = np.asarray(meta["whitening"]["std"], np.float32)

    #: the artifact reads uint8 crops as they are (the int8 variants: their input's quantisation is the model's
    #: normalisation); set by a runtime from its input's dtype
    raw_crops = False

    def normalize(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops ``(B, S, S, 3)`` → float32 ``(x - mean) * scale`` as export.json says."""
        return normalize_crops(crops, self.norm_mean, self.norm_scale)

    def model_input(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops ``(B, S, S, 3)`` → what the artifact reads: the crops themselves (:attr:`raw_crops`), else
        :meth:`normalize`."""
        return np.ascontiguousarray(crops, np.uint8) if self.raw_crops else self.normalize(crops)

    def unwhiten(self, params_w: np.ndarray) -> np.ndarray:
        """Whitened params ``(B, 62)`` → raw, with export.json's whitening."""
        return np.asarray(params_w, np.float32) * self.param_std + self.param_mean
