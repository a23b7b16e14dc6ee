"""Accuracy protocols: AFLW2000-3D as 3DDFA benchmarks it, and 68-point NME on 300-W style faces.

This package owns the benchmarks and their metrics, one job per module: :mod:`.metrics` (normalised mean
errors, yaw-bin tables, cumulative error curves; numpy only), :mod:`.aflw2000` (the AFLW2000-3D data and its
68-point protocol), :mod:`.w300` (300-W through the full pipeline), :mod:`.predictors` (the model under test:
a model directory or an export, by runtime) and :mod:`.common` (the dataset error, strict JSON). The metric
modules must not import TensorFlow, Keras or the CLI; nothing here imports :mod:`tf2dasl.commands` or
:mod:`tf2dasl.training`, and models, runtimes and the reconstructor are imported lazily, where a benchmark
runs them. The names below are the package's public API (``from tf2dasl.evaluate import ...``).
"""
from .aflw2000 import Aflw2000, evaluate_aflw2000, format_table, load_aflw2000, read_aflw_mat  # noqa: F401
from .common import DatasetError  # noqa: F401
from .metrics import (BIN_NAMES, FAILURE_NME, YAW_BINS, ced_auc, nme_3d, nme_bbox, nme_interocular,  # noqa: F401
                      yaw_table)
from .predictors import PASSES, landmarks_fn  # noqa: F401
from .w300 import (MATCH_IOU, evaluate_300w, format_300w, format_errors, load_300w_faces,  # noqa: F401
                   match_box, match_labelled_face)
