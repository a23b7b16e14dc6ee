"""``FaceModel``: a regressor together with everything needed to use it (spec, morphable model).

The spec is what a model directory's ``model.json`` holds (see :mod:`tf2dasl.io.model_dir`);
no file I/O here.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import tensorflow as tf

from .geometry.camera import model_to_crop
from .geometry.conventions import CONVENTIONS, get_convention
from .geometry.landmark_map import landmark_map
from .geometry.morphable_model import NUM_PARAMS, MorphableModel
from .geometry.pose import params_to_pose
from .models.backbones import BACKBONES
from .models.mobilenet_v1 import STEM_CHANNELS
from .models.morphable import MorphableLayer
from .models.preprocessor import CropPreprocessor
from .models.regressor import Regressor
from .models.task import FaceTask

#: input channels a regressor takes: the crop (3) or the crop and the landmark map (4)
CHANNEL_CHOICES = (3, 4)
#: crop colour orders the pipeline produces (images are read with OpenCV, so BGR only)
COLOR_ORDERS = ("BGR",)
#: the smallest crop side the backbones accept (Keras' MobileNetV2 and ResNet50 refuse smaller inputs)
MIN_INPUT_SIZE = 32
#: the narrowest width that leaves MobileNetV1's stem at least one channel
MIN_WIDTH = 1.0 / STEM_CHANNELS


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def regressor_problems(backbone, width, input_size, channels, num_params=NUM_PARAMS) -> list[tuple[str, object, str]]:
    """What stops a regressor from being built: ``(field, value, what is allowed)`` per bad value, in field order
    (empty: all fine). Shared by :class:`ModelSpec`, the training config and the 3DDFA_V2 importer, which each
    name the fields as their own file does."""
    problems = []
    if backbone not in BACKBONES:
        problems.append(("backbone", backbone, f"one of {', '.join(BACKBONES)}"))
    if not _is_number(width) or width < MIN_WIDTH:
        problems.append(("width", width, f"a number >= {MIN_WIDTH:g}"))
    if not _is_int(input_size) or input_size < MIN_INPUT_SIZE:
        problems.append(("input_size", input_size, f"an integer >= {MIN_INPUT_SIZE}"))
    if not _is_int(channels) or channels not in CHANNEL_CHOICES:
        problems.append(("channels", channels, " or ".join(map(str, CHANNEL_CHOICES))))
    if not _is_int(num_params) or num_params != NUM_PARAMS:
        problems.append(("num_params", num_params, f"{NUM_PARAMS} (3DDFA's pose, shape and expression parameters)"))
    return problems


def first_problem(problems: list[tuple[str, object, str]], names: dict | None = None) -> str | None:
    """``"KEY must be ALLOWED, got VALUE"`` for the first of :func:`regressor_problems` / :func:`spec_problems`
    (``names`` renames keys, e.g. to a 3DDFA_V2 yml's), or None when there is none."""
    if not problems:
        return None
    key, value, allowed = problems[0]
    return f"{(names or {}).get(key, key)} must be {allowed}, got {value!r}"


def spec_problems(spec: "ModelSpec") -> list[tuple[str, object, str]]:
    """``(field, value, what is allowed)`` for each bad value of ``spec`` (empty: all fine)."""
    problems = []
    if not isinstance(spec.name, str):
        problems.append(("name", spec.name, "a string"))
    problems += regressor_problems(spec.backbone, spec.width, spec.input_size, spec.channels, spec.num_params)
    if spec.color_order not in COLOR_ORDERS:
        problems.append(("color_order", spec.color_order, " or ".join(COLOR_ORDERS)))
    if not _is_number(spec.norm_mean):
        problems.append(("norm_mean", spec.norm_mean, "a finite number"))
    if not _is_number(spec.norm_scale) or spec.norm_scale <= 0:
        problems.append(("norm_scale", spec.norm_scale, "a positive number"))
    if not isinstance(spec.crop_convention, str) or spec.crop_convention not in CONVENTIONS:
        problems.append(("crop_convention", spec.crop_convention, f"one of {', '.join(sorted(CONVENTIONS))}"))
    if not isinstance(spec.provenance, dict):
        problems.append(("provenance", spec.provenance, "a mapping"))
    return problems


@dataclass
class ModelSpec:
    """How to build and feed a regressor. Input crops are ``(B, input_size, input_size, 3)`` uint8 in
    ``color_order``, normalised as ``(x - norm_mean) * norm_scale``; with ``channels == 4`` the landmark map
    (already in [-1, 1]) is the 4th channel. ``crop_convention`` names the model-frame → crop-pixel map."""

    name: str = "model"
    backbone: str = "mobilenet_v1"
    width: float = 1.0
    input_size: int = 120
    channels: int = 3
    num_params: int = 62
    color_order: str = "BGR"
    norm_mean: float = 127.5
    norm_scale: float = 1.0 / 128.0
    crop_convention: str = "3ddfa_v2"
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> "ModelSpec":
        """``self``, or ValueError naming the first bad field, its value and what is allowed."""
        problem = first_problem(spec_problems(self))
        if problem:
            raise ValueError(problem)
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        """A checked spec from a mapping (``model.json``'s ``spec``); ValueError names an unknown or bad key."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a mapping, got {type(d).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model spec key(s) {unknown} (known: {', '.join(cls.__dataclass_fields__)})")
        return cls(**d).validate()

    def build_regressor(self) -> Regressor:
        reg = Regressor(self.backbone, self.width, self.input_size, self.channels, self.num_params, name="regressor")
        reg.build()
        return reg


class FaceModel:
    """A model ready to use: its spec, morphable model and :class:`~tf2dasl.models.task.FaceTask` (``.task``), with a
    numpy API. ``predict_*`` methods take crops ``(B, S, S, 3)`` uint8 in the model's colour order.
    """

    def __init__(self, spec: ModelSpec, regressor: Regressor, mm: MorphableModel):
        self.spec, self.regressor, self.mm = spec, regressor, mm
        self.convention = get_convention(spec.crop_convention)
        self.task = FaceTask(CropPreprocessor.from_spec(spec), regressor,
                             MorphableLayer(mm, spec.input_size, spec.crop_convention, dense=False))
        s = spec.input_size
        crops = tf.TensorSpec([None, s, s, 3], tf.uint8)
        self._one_pass = tf.function(lambda c, m: self.task.regress(self.task.preprocessor.normalize(c), m)[0],
                                     input_signature=[crops, tf.TensorSpec([None, s, s], tf.float32)])
        self._infer = tf.function(lambda c: self.task.infer(self.task.preprocessor.normalize(c)),
                                  input_signature=[crops])

    # -------------------------------------------------------------- inference
    def _batched(self, fn, crops: np.ndarray, *extra, batch_size: int = 256) -> np.ndarray:
        crops = np.asarray(crops, np.uint8)
        if len(crops) == 0:
            return np.zeros((0, self.spec.num_params), np.float32)
        out = [fn(tf.constant(crops[i:i + batch_size]), *(tf.constant(e[i:i + batch_size]) for e in extra)).numpy()
               for i in range(0, len(crops), batch_size)]
        return np.concatenate(out).astype(np.float32)

    def predict_whitened(self, crops: np.ndarray, maps: np.ndarray | None = None, batch_size: int = 256) -> np.ndarray:
        """``(B, S, S, 3)`` uint8 crops (+ landmark maps ``(B, S, S)``; None: empty) → ``(B, 62)`` whitened params
        (one forward pass)."""
        if maps is None:
            if self.spec.channels == 3:  # no map channel: no empty map to build and feed on every call
                return self._batched(self._infer, crops, batch_size=batch_size)
            maps = landmark_map(None, self.spec.input_size, batch=len(crops))
        return self._batched(self._one_pass, crops, np.asarray(maps, np.float32), batch_size=batch_size)

    def predict_params(self, crops: np.ndarray, maps: np.ndarray | None = None, passes: int = 2) -> np.ndarray:
        """``(B, S, S, 3)`` uint8 crops → ``(B, 62)`` raw params. A 4-channel model runs its two passes
        (:meth:`FaceTask.infer`) unless ``maps`` are given or ``passes == 1``."""
        if self.spec.channels == 4 and maps is None and passes > 1:
            return self.mm.unwhiten(self._batched(self._infer, crops))
        return self.mm.unwhiten(self.predict_whitened(crops, maps))

    def landmarks_crop(self, params: np.ndarray) -> np.ndarray:
        """Raw params ``(B, 62)`` → 68 landmarks in crop pixels ``(B, 68, 3)``."""
        return model_to_crop(self.mm.landmarks(params), self.spec.input_size, self.convention)

    def vertices_crop(self, params: np.ndarray) -> np.ndarray:
        """Raw params ``(B, 62)`` → dense vertices in crop pixels ``(B, N, 3)``."""
        return model_to_crop(self.mm.vertices(params, dense=True), self.spec.input_size, self.convention)

    @staticmethod
    def pose(params: np.ndarray) -> np.ndarray:
        """Raw params ``(B, 62)`` → ``(B, 3)`` yaw, pitch, roll (degrees)."""
        return params_to_pose(params)
