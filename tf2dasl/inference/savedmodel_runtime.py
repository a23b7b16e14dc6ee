"""The SavedModel runtime: ``saved_model/NAME/<highest version>/`` of an export, through its signatures (uint8
crops in, normalisation and decoding in the graph) — what TF Serving runs, in process."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from .base import Prediction, batches
from .export_dir import DEFAULT_SIGNATURE, EXPORT_HINT, MAP_SIGNATURE, RuntimeLoadError, read_export
from .exported import ExportedPredictor

#: faces per signature call
BATCH_SIZE = 256


def saved_model_version_dir(export_dir: Path, model_name: str) -> Path:
    """The highest version folder ``saved_model/NAME/<V>/`` holding a ``saved_model.pb``."""
    base = export_dir / "saved_model" / model_name
    versions = sorted(int(p.name) for p in base.glob("*") if p.name.isdigit() and (p / "saved_model.pb").is_file()) \
        if base.is_dir() else []
    if not versions:
        raise RuntimeLoadError(f"{export_dir}: no SavedModel under saved_model/{model_name}/<version>/; "
                               + EXPORT_HINT.format(dir=export_dir))
    return base / str(versions[-1])


class SavedModelPredictor(ExportedPredictor):
    """``serving_default`` for crops, ``with_map`` (4-channel models) for crops with landmark maps."""

    runtime = "savedmodel"

    def __init__(self, export_dir: str | Path, batch_size: int = BATCH_SIZE):
        meta = read_export(export_dir)
        self.path = saved_model_version_dir(Path(export_dir), meta["model_name"])
        super().__init__(export_dir, f"savedmodel v{self.path.name}", meta)
        try:
            self.loaded = tf.saved_model.load(str(self.path))
        except Exception as exc:
            raise RuntimeLoadError(f"{self.path}: cannot load the SavedModel ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        self.batch_size = int(batch_size)

    def signature(self, name: str):
        """One of the SavedModel's signatures, or a one-line error naming what the export lacks."""
        try:
            return self.loaded.signatures[name]
        except KeyError:
            raise RuntimeLoadError(f"{self.path}: no {name!r} signature (an export of a {self.channels}-channel model"
                                   f" from an older tf2dasl?); " + EXPORT_HINT.format(dir=self.export_dir)) from None

    def _predict(self, crops, maps):
        outs = []
        for b in batches(len(crops), self.batch_size):
            if maps is None:
                out = self.signature(DEFAULT_SIGNATURE)(crops=tf.constant(crops[b]))
            else:
                out = self.signature(MAP_SIGNATURE)(crops=tf.constant(crops[b]), maps=tf.constant(maps[b]))
            outs.append({k: v.numpy() for k, v in out.items()})
        joined = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        return Prediction(joined.pop("params"), {"landmarks": joined.pop("landmarks_3d"), **joined})
