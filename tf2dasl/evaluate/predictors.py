"""The model under test: a model directory run by Keras, or an export run by SavedModel, TFLite or ONNX Runtime.

A setting the chosen runtime would ignore is refused (one line) rather than silently dropped.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .aflw2000 import LandmarkFn

#: ``passes`` of a 4-channel (2DASL) Keras model: 1 = empty landmark map only, 2 = then the map of the first
#: pass's landmarks (:meth:`tf2dasl.model.FaceModel.predict_params`; exported graphs always run both).
PASSES = (1, 2)
#: input channels of a 2DASL model: the colour crop and its landmark map (the only models with passes)
MAP_MODEL_CHANNELS = 4


def landmarks_fn(runtime: str = "keras", model=None, export_dir=None, variant: str | None = None,
                 passes: int | None = None) -> tuple[str, LandmarkFn]:
    """``(name, fn)``: the model under test as a :data:`LandmarkFn` for :func:`evaluate_aflw2000`.

    ``runtime="keras"`` runs ``model`` (a model directory or a loaded :class:`tf2dasl.model.FaceModel`), with
    ``passes`` (:data:`PASSES`, 4-channel models only; None: the model's default). ``savedmodel``, ``tflite``
    and ``onnx`` run the export in ``export_dir`` (``variant``: TFLite only). A setting the chosen runtime
    would ignore is refused (:class:`UserError`, one line) rather than silently dropped."""
    from ..runtimes import DEFAULT_VARIANT, RUNTIMES, load_runtime, require_export_dir

    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if variant is not None and runtime != "tflite":
        raise UserError(f"--variant applies to --runtime tflite; --runtime {runtime} has no variants (drop --variant)")
    if passes is not None and passes not in PASSES:
        raise UserError(f"--passes {passes}: use one of {', '.join(map(str, PASSES))}")
    if runtime == "keras":
        if export_dir:
            raise UserError("--export-dir applies to --runtime savedmodel|tflite|onnx; --runtime keras runs the "
                            "model directory given by --model (drop --export-dir, or name the export's runtime)")
        if model is None or model == "":
            raise UserError("--model MODEL_DIR is required with --runtime keras")
        if isinstance(model, (str, Path)):
            from .. import load_model

            model = load_model(model)
        if passes is not None and model.spec.channels != MAP_MODEL_CHANNELS:
            raise UserError(f"--passes applies to {MAP_MODEL_CHANNELS}-channel (2DASL) models; {model.spec.name} takes "
                            f"{model.spec.channels}-channel crops and always runs one pass (drop --passes)")
        kw = {} if passes is None else {"passes": passes}
        return model.spec.name, lambda crops: model.landmarks_crop(model.predict_params(crops, **kw))
    if model is not None and model != "":
        raise UserError(f"--model applies to --runtime keras; --runtime {runtime} runs the export in --export-dir "
                        "alone (drop --model)")
    if passes is not None:
        raise UserError("--passes applies to --runtime keras; exported artifacts always run the model's own passes "
                        "(drop --passes)")
    rt = load_runtime(runtime, require_export_dir(runtime, export_dir),
                      variant=DEFAULT_VARIANT if variant is None else variant)
    return rt.name, rt.landmarks_crop


