"""The predictor contract: ``predict(crops, maps=None) -> Prediction``, one implementation per runtime.

``crops`` ``(B, S, S, 3)`` uint8 in the model's colour order; ``maps`` ``(B, S, S)`` float32 landmark maps for a
4-channel (2DASL) model (:mod:`tf2dasl.inference.crops`). Without maps a 4-channel model runs its two passes (the
empty map, then the map of its own first landmarks); with maps, one pass with them — so the empty map
(:func:`tf2dasl.geometry.landmark_map.landmark_map` of None) is "one pass". The result's ``params`` are the raw
3DDFA parameters ``(B, 62)``; ``outputs`` hold what the runtime computed anyway (an export's graph decodes the 68
landmarks, a served model also the pose): a consumer decodes with :class:`tf2dasl.geometry.decoder.Decoder` and may
compare. Checks of the input, the empty batch and context management are done once, here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry.morphable_model import NUM_PARAMS
from .crops import check_crops, check_maps

#: ``passes`` of a 4-channel (2DASL) model without maps: 1 = the empty landmark map only, 2 = then the map of the
#: first pass's landmarks (the model's inference, and what every exported graph runs)
PASSES = (1, 2)


@dataclass
class Prediction:
    """``params`` ``(B, 62)`` float32 raw parameters; ``outputs``: more arrays by name (``"landmarks"`` ``(B, 68, 3)``
    crop pixels when the runtime's graph computes them)."""

    params: np.ndarray
    outputs: dict = field(default_factory=dict)

    @property
    def landmarks(self) -> np.ndarray | None:
        """The runtime's own 68 landmarks ``(B, 68, 3)`` in crop pixels, when it has them."""
        return self.outputs.get("landmarks")


class Predictor:
    """Crops (and maps) in, raw parameters out. ``name``: what to call the model in reports; ``input_size`` the crop
    side ``S`` (None: any); ``channels`` 3, or 4 for a model that takes landmark maps; ``crop_convention`` the crop
    frame its parameters live in (:mod:`tf2dasl.geometry.conventions`). Subclasses implement :meth:`_predict`."""

    #: the runtime's name (``--runtime``)
    runtime = "?"

    def __init__(self, name: str, input_size: int | None, channels: int, crop_convention: str = "3ddfa_v2"):
        self.name, self.channels = name, int(channels)
        self.input_size = None if input_size is None else int(input_size)  # None: any square crop (a server's)
        self.crop_convention = crop_convention

    def predict(self, crops, maps=None) -> Prediction:
        """uint8 crops ``(B, S, S, 3)`` [+ maps ``(B, S, S)``] → :class:`Prediction` (see the module docstring)."""
        crops = check_crops(crops, self.input_size)
        maps = check_maps(maps, len(crops), crops.shape[1], self.channels, self.name)
        if len(crops) == 0:
            return Prediction(np.zeros((0, NUM_PARAMS), np.float32))
        out = self._predict(crops, maps)
        out.params = np.asarray(out.params, np.float32)
        return out

    def _predict(self, crops: np.ndarray, maps: np.ndarray | None) -> Prediction:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release what the runtime holds (a server connection); a no-op for in-process runtimes."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, {self.input_size}px, {self.channels} channels)"


def batches(n: int, size: int | None):
    """Slices of ``range(n)`` of at most ``size`` (None: one slice)."""
    step = size or max(n, 1)
    return [slice(i, i + step) for i in range(0, n, step)]
