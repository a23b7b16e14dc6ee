"""The regressor inside Beam's RunInference: :class:`SavedModelHandler`, Beam's TensorFlow model handler
(``TFModelHandlerTensor``) on the SavedModel of a ``tf2dasl export``, batching the crops of several photos.

Its elements are whole photos (:class:`tf2dasl.beam.photos.PhotoCrops`, F faces each): RunInference's
BatchElements weighs each by its face count, so a batch holds up to ``faces_per_batch`` faces, and
:func:`infer_photos` concatenates their crops into one call of the export's signature — ``serving_default``
(uint8 crops in; a 4-channel model runs its two passes), or, for a 4-channel model's one-pass box crops,
``with_map`` with the empty landmark map (:func:`tf2dasl.reconstruct.one_pass_maps`, built once for the batch) —
and splits the raw ``params`` ``(ΣF, 62)`` back per photo. Normalisation, whitening and the model's passes are the
exported graph's (:mod:`tf2dasl.export.saved_model`); nothing is re-implemented here.

The SavedModel is loaded with ``tf.saved_model.load``: Beam's default loader (``tf.keras.models.load_model``)
does not read SavedModels under Keras 3. An export on ``gs://`` or ``s3://`` is copied to the worker first
(:mod:`tf2dasl.beam.staging`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerTensor

from ..inference.export_dir import DEFAULT_SIGNATURE, MAP_SIGNATURE, read_export
from ..inference.savedmodel_runtime import saved_model_version_dir
from ..reconstruct import one_pass_maps
from .staging import EXPORT_DIR_FILES, local_dir

#: faces per RunInference batch (one signature call): large enough to amortise the call, small enough that the
#: photos waiting in a batch (their decoded images, before the refined crops are cut) stay a few hundred MB
FACES_PER_BATCH = 64


@dataclass(frozen=True)
class ExportModel:
    """What RunInference loads once per worker process: the export's SavedModel (``saved_model``) and the input
    channels of its model (which tell whether one-pass crops get a landmark map)."""

    saved_model: Any
    channels: int


def face_count(photo) -> int:
    """A photo's weight in a RunInference batch: its number of faces."""
    return photo.num_faces


def infer_photos(model: ExportModel, batch: Sequence, inference_args: dict[str, Any] | None = None,
                 model_id: str | None = None) -> list[PredictionResult]:
    """RunInference's ``inference_fn``: photos → one :class:`PredictionResult` each, ``inference`` its raw
    parameters ``(F, 62)`` float32 (one signature call for the whole batch: crops ``(ΣF, S, S, 3)``, and for a
    4-channel model's one-pass crops the empty landmark maps ``(ΣF, S, S)``). An empty batch (BatchElements sends
    one at the end of some bundles) is no call."""
    if not batch:
        return []
    one_pass = {p.one_pass for p in batch}
    if len(one_pass) > 1:
        raise ValueError("a RunInference batch mixes one-pass box crops with refined crops")
    crops = np.concatenate([p.crops for p in batch])
    maps = one_pass_maps(model.channels, crops.shape[1], len(crops)) if one_pass.pop() else None
    signatures = model.saved_model.signatures
    if maps is None:
        out = signatures[DEFAULT_SIGNATURE](crops=tf.constant(crops))
    else:
        out = signatures[MAP_SIGNATURE](crops=tf.constant(crops), maps=tf.constant(maps))
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

    def load_model(self) -> ExportModel:
        local = local_dir(self.export_dir, EXPORT_DIR_FILES)
        meta = read_export(local)
        return ExportModel(tf.saved_model.load(str(saved_model_version_dir(local, meta["model_name"]))),
                           int(meta["spec"]["channels"]))

    def get_num_bytes(self, batch: Sequence) -> int:
        return int(sum(p.crops.nbytes for p in batch))

    def get_metrics_namespace(self) -> str:
        return "tf2dasl_RunInference"
