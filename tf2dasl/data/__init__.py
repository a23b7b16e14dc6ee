"""Training data: sample listings (``sources``), landmark sets (``landmark_sets``), loading (``loading``),
augmentation (``augment``), teacher labels (``teacher``), tf.data pipelines (``pipeline``) and the calibration
faces of the int8 exports (``calibration``).

Owns reading datasets and turning them into batches; imports no model code (a teacher is a callable here).
Importing this package does not import TensorFlow; the TF functions import it when called.
"""
from .augment import FLIP_PERMUTATION_68, AugmentConfig  # noqa: F401
from .config import AflwDataConfig, DataError, LabelledDataConfig, WildDataConfig  # noqa: F401
from .landmark_sets import AFLW_21, LANDMARK_SETS, LANDMARKS_68, PointLayout, read_points_file  # noqa: F401
from .loading import LabelledCrops, LoadStats, WildFaces, load_labelled_crops, load_wild_faces  # noqa: F401
from .sources import (DataSourceError, FaceSample, ParamSample, list_300wlp, list_3ddfa_params,  # noqa: F401
                      list_aflw_wild, list_pts_faces, load_whitening, split_holdout)
from .pipeline import (WildData, WildSource, labelled_dataset, load_labelled, load_wild_data,  # noqa: F401
                       mixed_dataset, plain_crops, steps_per_epoch, wild_dataset, wild_sources_dataset)
