"""Accuracy protocols: AFLW2000-3D as 3DDFA and 2DASL benchmark it (68-point, dense alignment, 3D reconstruction),
68-point NME on 300-W style faces, and the pictures of their results.

This package owns the benchmarks and their metrics, one job per module: :mod:`.metrics` (normalised mean errors,
yaw-bin tables, cumulative error curves), :mod:`.dense` (dense 2D/3D and reconstruction errors) and :mod:`.icp`
(Horn's rotation, 2DASL's rigid ICP) — numpy and scipy only; :mod:`.aflw2000_data` (the AFLW2000-3D data),
:mod:`.dense_truth` (its dense ground truth from the ``.mat`` fits), :mod:`.aflw2000` (the protocol: predictions
→ result), :mod:`.w300` (300-W through the full pipeline), :mod:`.under_test` (the model under test: a predictor
on any runtime and the decoder of its parameters, or a parameters file), :mod:`.plots` (CED curves and yaw-bin
bars, matplotlib) and :mod:`.common` (the dataset error, strict JSON). The metric modules must not import
TensorFlow, Keras or matplotlib; nothing here imports :mod:`tf2dasl.commands` or :mod:`tf2dasl.training`; a model
runs through :mod:`tf2dasl.inference`, which imports a runtime's library only when it is asked for. The names below
are the package's public API (``from tf2dasl.evaluate import ...``); :mod:`.plots` is imported on its own.
"""
from .aflw2000 import (Predictions, evaluate_aflw2000, format_table, params_predictions, predict_aflw2000,  # noqa: F401
                       score_aflw2000)
from .aflw2000_data import Aflw2000, load_aflw2000, read_aflw_mat  # noqa: F401
from .common import DatasetError, nan_to_none  # noqa: F401
from .dense import DENSE_METRICS, dense_nme_2d, dense_nme_3d, reconstruction_nme  # noqa: F401
from .metrics import (BIN_NAMES, FAILURE_NME, YAW_BINS, ced_auc, nme_3d, nme_bbox, nme_interocular,  # noqa: F401
                      yaw_table)
from .under_test import (ModelUnderTest, check_decoder, load_decoder, load_params_file, model_under_test,  # noqa: F401
                         params_decoder)
from .w300 import (MATCH_IOU, evaluate_300w, format_300w, format_errors, load_300w_faces, match_box,  # noqa: F401
                   match_labelled_face)
