"""The regressor inside Beam's RunInference: :class:`SavedModelHandler`, Beam's TensorFlow model handler
(``TFModelHandlerTensor``) on the SavedModel of a ``tf2dasl export``, batching the crops of several photos.

Its elements are whole photos (:class:`tf2dasl.beam.photos.PhotoCrops`, F faces each): RunInference's
BatchElements weighs each by its face count, so a batch holds up to ``faces_per_batch`` faces, and
:func:`infer_photos` concatenates their crops into one call of the export's signature — ``serving_default``
(uint8 crops in; a 4-channel model runs its two passes), or ``with_map`` when the crops carry landmark maps (one
pass with them) — and splits the raw ``params`` ``(ΣF, 62)`` back per photo. Normalisation, whitening and the
model's passes are the exported graph's (:mod:`tf2dasl.export.saved_model`); nothing is re-implemented here.

The SavedModel is loaded with ``tf.saved_model.load``: Beam's default loader (``tf.keras.models.load_model``)
does not read SavedModels under Keras 3. An export on ``gs://`` or ``s3://`` is copied to the worker first
(:mod:`tf2dasl.beam.staging`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import tensorflow as tf
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerTensor

from ..inference.export_dir import DEFAULT_SIGNATURE, MAP_SIGNATURE, read_export
from ..inference.savedmodel_runtime import saved_model_version_dir
from .staging import EXPORT_DIR_FILES, local_dir

#: faces per RunInference batch (one signature call): large enough to amortise the call, small enough that the
#: photos waiting in a batch (their decoded images, before the refined crops are cut) stay a few hundred MB
FACES_PER_BATCH = 64


def face_count(photo) -> int:
    """A photo's weight in a RunInference batch: its number of faces."""
    return photo.num_faces


def infer_photos(model, batch: Sequence, inference_args: dict[str, Any] | None = None,
                 model_id: str | None = None) -> list[PredictionResult]:
    """RunInference's ``inference_fn``: photos → one :class:`PredictionResult` each, ``inference`` its raw
    parameters ``(F, 62)`` float32 (one signature call for the whole batch). An empty batch (BatchElements sends
    one at the end of some bundles) is no call."""
    if not batch:
        return []
    crops = np.concatenate([p.crops for p in batch])
    with_maps = [p.maps is not None for p in batch]
    if all(with_maps):
        maps = np.concatenate([p.maps for p in batch])
        out = model.signatures[MAP_SIGNATURE](crops=tf.constant(crops), maps=tf.constant(maps))
    elif not any(with_maps):
        out = model.signatures[DEFAULT_SIGNATURE](crops=tf.constant(crops))
    else:
        raise ValueError("a RunInference batch mixes crops with and without landmark maps")
    params = np.asarray(out["params"], np.float32)
    splits = np.cumsum([p.num_faces for p in batch])[:-1]
    return [PredictionResult(p, pp, model_id) for p, pp in zip(batch, np.split(params, splits))]


class SavedModelHandler(TFModelHandlerTensor):
    """Beam's TF model handler on ``export_dir``'s SavedModel (its highest version), photos as elements (see the
    module docstring); ``faces_per_batch`` caps a batch's faces."""

    def __init__(self, export_dir: str, faces_per_batch: int = FACES_PER_BATCH):
        super().__init__(str(export_dir), inference_fn=infer_photos, min_batch_size=1,
                         max_batch_size=int(faces_per_batch), element_size_fn=face_count)
        self.export_dir = str(export_dir)

    def load_model(self):
        local = local_dir(self.export_dir, EXPORT_DIR_FILES)
        return tf.saved_model.load(str(saved_model_version_dir(local, read_export(local)["model_name"])))

    def get_num_bytes(self, batch: Sequence) -> int:
        return int(sum(p.crops.nbytes + (0 if p.maps is None else p.maps.nbytes) for p in batch))

    def get_metrics_namespace(self) -> str:
        return "tf2dasl_RunInference"
