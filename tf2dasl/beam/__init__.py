"""Reconstructing millions of photos with Apache Beam (``tf2dasl reconstruct-beam``; the ``[beam]`` extra): file
patterns read through Beam's FileSystems, decoded, detected and cropped on the workers, regressed by Beam's
RunInference on the SavedModel export, decoded exactly as ``tf2dasl reconstruct`` does, written as sharded JSON
lines (and a Parquet table of faces) with a dead letter for every photo that has no record.

Owns the pipeline (:mod:`.pipeline`), its per-photo steps (:mod:`.photos`), the RunInference model handler
(:mod:`.model_handler`), the sinks (:mod:`.sinks`) and the copying of remote model directories to the workers
(:mod:`.staging`). It is the only package that imports ``apache_beam``; nothing else imports it (the core package
runs without Beam installed). Must not import the CLI, training, evaluation, the Keras models or the exporter.
"""
from .model_handler import FACES_PER_BATCH, SavedModelHandler  # noqa: F401
from .photos import CAPPED, DEAD_LETTER, NAMESPACE, STAGES, PhotoSettings  # noqa: F401
from .pipeline import BeamSummary, ReconstructPhotos, reconstruct_beam  # noqa: F401
from .sinks import FACE_SCHEMA, OUTPUTS, output_pattern  # noqa: F401
