"""What every benchmark of :mod:`tf2dasl.evaluate` shares: the one-line dataset error and strict-JSON results."""
from __future__ import annotations

import numpy as np

from ..errors import UserError


class DatasetError(UserError):
    """A dataset folder is missing or lacks a file the protocol needs (one line naming it and the fix)."""


def nan_to_none(obj):
    """NaN (e.g. the NME of an empty set, or of a face that was not scored) → None, so the JSON is strict."""
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj
