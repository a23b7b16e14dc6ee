"""The Python API in one place: load a model, run it on any runtime, reconstruct photos, and the batch run behind
``tf2dasl reconstruct``.

    from tf2dasl.api import load_model, load_predictor, make_reconstructor, reconstruct_paths
    rec = make_reconstructor("models/mb05")                 # BlazeFace + the model directory (Keras)
    faces = rec(image, dense=True)                          # list[Face]
    predictor = load_predictor("tflite", export_dir="export/mb05")
    params = predictor.predict(crops).params                # (B, 62) raw parameters, any runtime
    summary = reconstruct_paths(["photos/"], "models/mb05", "out/", outputs=["overlay"])

A facade over the model directory (:mod:`tf2dasl.io.model_dir`), the predictors (:mod:`tf2dasl.inference`), the
decoder (:mod:`tf2dasl.geometry.decoder`), the reconstructor (:mod:`tf2dasl.reconstruct`), the batch run
(:mod:`tf2dasl.batch`) and the boxes file reader (:mod:`tf2dasl.io.boxes`), under the names users import.
Importing it imports TensorFlow (``load_model``); the modules behind it that run on numpy do not.
"""
from __future__ import annotations

from .batch import (MESHES, NO_FACE_HINTS, PICTURE_MAX_PIXELS, PICTURES, SUMMARY_STEM, TEXTURED,  # noqa: F401
                    RunInterrupted, Summary, image_record, model_identity, output_files, output_stems,
                    reconstruct_paths, write_outputs)
from .geometry.decoder import Decoder  # noqa: F401
from .inference import RUNTIMES, Prediction, Predictor, load_predictor  # noqa: F401
from .io.boxes import MIN_BOX_SIDE, BoxesError, read_boxes_file  # noqa: F401
from .io.model_dir import load_model_dir as load_model, save_model_dir as save_model  # noqa: F401
from .reconstruct import Face, Reconstructor, make_reconstructor  # noqa: F401
