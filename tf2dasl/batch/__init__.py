"""Reconstructing photos in bulk into an output folder (``tf2dasl reconstruct`` on images; videos are
:mod:`tf2dasl.video`'s).

Owns the run loop (:mod:`.photos`: decode, reconstruct, write through the run folder, resume, stop cleanly), what a
photo becomes on disk (:mod:`.files`: JSON record, pictures, meshes, textured assets), the output names
(:mod:`.naming`) and the run's account (:mod:`.summary`). Files are written only through :mod:`tf2dasl.io.outputs`
and :mod:`tf2dasl.io.run_folder`. Must not import TensorFlow or Keras directly (a model comes in as a reconstructor,
whose predictor may run any runtime), the CLI, training or evaluation.
"""
from .files import (MESHES, PICTURE_MAX_PIXELS, PICTURES, TEXTURED, image_record, output_files,  # noqa: F401
                    write_outputs)
from .naming import SUMMARY_STEM, output_stems  # noqa: F401
from .photos import model_identity, reconstruct_paths  # noqa: F401
from .summary import NO_FACE_HINTS, RunInterrupted, Summary  # noqa: F401
