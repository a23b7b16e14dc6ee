"""Where a model runs, behind one interface (:class:`Backend`): the model directory itself (Keras, a
:class:`tf2dasl.model.FaceModel`), one of its exported runtimes (SavedModel, TFLite, ONNX: :mod:`tf2dasl.runtimes`)
or a TF Serving server (gRPC: :mod:`tf2dasl.serving`). The model directory always supplies the spec and the
morphable model; :class:`tf2dasl.reconstruct.Reconstructor` calls any of them the same way."""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from .errors import UserError

if TYPE_CHECKING:  # annotations only: the pipeline above (reconstruct, batch, video) stays free of TensorFlow
    from .geometry.morphable_model import MorphableModel
    from .model import ModelSpec


class Backend(Protocol):
    """What the pipeline needs from a model: a local :class:`tf2dasl.model.FaceModel` or a served one."""

    spec: ModelSpec
    mm: MorphableModel

    def predict_params(self, crops: np.ndarray, maps: np.ndarray | None = None, passes: int = 2) -> np.ndarray: ...


class PredictorBackend:
    """A :class:`Backend` around a predictor that maps crops to raw params on its own — an exported runtime
    (:mod:`tf2dasl.runtimes`) or a TF Serving client (:mod:`tf2dasl.serving`) — with the spec and morphable
    model of the model directory it was exported from. Exported graphs run their landmark-map passes inside."""

    def __init__(self, predictor, spec: ModelSpec, mm: MorphableModel):
        self.predictor, self.spec, self.mm = predictor, spec, mm

    def predict_params(self, crops: np.ndarray, maps: np.ndarray | None = None, passes: int = 2) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.spec.num_params), np.float32)
        return np.asarray(self.predictor.predict_params(crops), np.float32)


def make_backend(model_dir, runtime: str = "keras", export_dir=None, server: str | None = None,
                 server_model: str | None = None, num_threads: int | None = None, variant: str | None = None):
    """The model a :class:`Reconstructor` calls: the model directory itself (Keras), one of its exported
    runtimes (``savedmodel``, ``tflite``, ``onnx`` from ``export_dir``; ``variant``: e.g. ``int8``, see
    :func:`tf2dasl.runtimes.load_runtime`) or a TF Serving server (``HOST:PORT``, gRPC). The model directory always
    supplies the morphable model and the spec."""
    from . import load_model

    local = [f"--runtime {runtime}"] * (runtime != "keras") + [f"--export-dir {export_dir}"] * bool(export_dir)
    if server and local:
        raise UserError(f"--server {server} runs the model on the server: drop {' and '.join(local)}, "
                        "or drop --server to run locally")
    model = load_model(model_dir)
    if server:
        from .serving import GrpcClient

        return PredictorBackend(GrpcClient(server, server_model or model.spec.name), model.spec, model.mm)
    if runtime == "keras":
        return model
    from .runtimes import load_runtime, require_export_dir

    export_dir = require_export_dir(runtime, export_dir)
    return PredictorBackend(load_runtime(runtime, export_dir, variant=variant, num_threads=num_threads), model.spec,
                            model.mm)
