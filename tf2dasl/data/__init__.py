"""Training data: sample listings (``sources``), augmentation (``augment``) and tf.data pipelines (``pipeline``).

Importing this package does not import TensorFlow; the TF functions import it when called.
"""
from .augment import FLIP_PERMUTATION_68, AugmentConfig  # noqa: F401
from .sources import (DataSourceError, FaceSample, ParamSample, list_300wlp, list_3ddfa_params,  # noqa: F401
                      list_pts_faces, load_whitening, split_holdout)
from .pipeline import (DataError, LabelledCrops, LabelledDataConfig, LoadStats, WildDataConfig, WildFaces,  # noqa: F401
                       labelled_dataset, load_labelled, load_labelled_crops, load_wild, load_wild_faces,
                       mixed_dataset, steps_per_epoch, wild_dataset)
