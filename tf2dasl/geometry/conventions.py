"""The mapping between the model frame (y up) and crop pixels (y down); see ``tf2dasl.geometry``."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CropConvention:
    """``x_c = x - x_shift``, ``y_c = size + y_flip_offset - y``, ``z_c = z - z_shift``."""

    name: str
    x_shift: float
    y_flip_offset: float
    z_shift: float


CROP_OFFSET_V2 = CropConvention("3ddfa_v2", x_shift=1.0, y_flip_offset=0.0, z_shift=1.0)
CROP_OFFSET_V1 = CropConvention("3ddfa_v1", x_shift=0.0, y_flip_offset=1.0, z_shift=0.0)

CONVENTIONS = {c.name: c for c in (CROP_OFFSET_V2, CROP_OFFSET_V1)}


def get_convention(name: str) -> CropConvention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown crop convention {name!r}; use one of {sorted(CONVENTIONS)}") from None
