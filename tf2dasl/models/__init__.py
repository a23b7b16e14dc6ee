"""Keras models: backbones, the regressor, the self-critic and the 2DASL training model."""
from .regressor import Regressor  # noqa: F401
