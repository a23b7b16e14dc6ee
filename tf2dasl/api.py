"""The Python API in one place: a model (directory, export runtime or TF Serving) and a reconstructor to call, and
the batch run behind ``tf2dasl reconstruct``.

    from tf2dasl.api import make_reconstructor, reconstruct_paths
    rec = make_reconstructor("models/mb05")                 # BlazeFace + the model directory
    faces = rec(image, dense=True)                          # list[Face]
    summary = reconstruct_paths(["photos/"], "models/mb05", "out/", outputs=["overlay"])

A facade: backends (:mod:`tf2dasl.backends`), the reconstructor (:mod:`tf2dasl.reconstruct`), the batch run
(:mod:`tf2dasl.batch`) and the boxes file reader (:mod:`tf2dasl.io.boxes`), under the names users import.
"""
from __future__ import annotations

from .batch import (MESHES, NO_FACE_HINTS, PICTURE_MAX_PIXELS, PICTURES, SUMMARY_STEM, TEXTURED,  # noqa: F401
                    RunInterrupted, Summary, image_record, model_identity, output_files, output_stems,
                    reconstruct_paths, write_outputs)
from .io.boxes import MIN_BOX_SIDE, BoxesError, read_boxes_file  # noqa: F401
from .backends import Backend, PredictorBackend, make_backend  # noqa: F401
from .reconstruct import Face, Reconstructor, make_reconstructor  # noqa: F401
