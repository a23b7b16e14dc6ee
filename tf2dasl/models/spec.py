"""``ModelSpec``: what a model is — the flat, checked description a :class:`~tf2dasl.models.task.FaceTask` is built
from and serialised as (its ``get_config``), and what an export's ``export.json`` repeats for runtimes that have no
Keras. No TensorFlow here: runtimes and model-directory checks read specs without building a network.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from ..geometry.conventions import CONVENTIONS
from ..geometry.morphable_model import NUM_PARAMS

#: backbones a regressor can be built on (:func:`tf2dasl.models.backbones.build_backbone`)
BACKBONES = ("mobilenet_v1", "mobilenet_v2", "resnet50")
#: MobileNetV1's stem channels at width 1.0 (3DDFA_V2's network)
STEM_CHANNELS = 32
#: input channels a regressor takes: the crop (3) or the crop and the landmark map (4)
CHANNEL_CHOICES = (3, 4)
#: crop colour orders the pipeline produces (images are read with OpenCV, so BGR only)
COLOR_ORDERS = ("BGR",)
#: the smallest crop side the backbones accept (Keras' MobileNetV2 and ResNet50 refuse smaller inputs)
MIN_INPUT_SIZE = 32
#: the largest crop side a spec may ask for (3DDFA's models use 120; beyond this a network is a memory accident)
MAX_INPUT_SIZE = 512
#: the narrowest width that leaves MobileNetV1's stem at least one channel, and the widest a spec may ask for
MIN_WIDTH, MAX_WIDTH = 1.0 / STEM_CHANNELS, 4.0
#: a model name names files, Keras models and TF Serving models: letters, digits, ``_``, ``.`` and ``-``
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")


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
    if not _is_number(width) or not MIN_WIDTH <= width <= MAX_WIDTH:
        problems.append(("width", width, f"a number in [{MIN_WIDTH:g}, {MAX_WIDTH:g}]"))
    if not _is_int(input_size) or not MIN_INPUT_SIZE <= input_size <= MAX_INPUT_SIZE:
        problems.append(("input_size", input_size, f"an integer in [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}]"))
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
    return f"{(names or {}).get(key, key)} must be {allowed}, got {value!r:.80}"


def spec_problems(spec: "ModelSpec") -> list[tuple[str, object, str]]:
    """``(field, value, what is allowed)`` for each bad value of ``spec`` (empty: all fine)."""
    problems = []
    if not isinstance(spec.name, str) or not NAME_PATTERN.fullmatch(spec.name):
        problems.append(("name", spec.name, "1-128 letters, digits, '_', '.' or '-'"))
    problems += regressor_problems(spec.backbone, spec.width, spec.input_size, spec.channels, spec.num_params)
    if spec.color_order not in COLOR_ORDERS:
        problems.append(("color_order", spec.color_order, " or ".join(COLOR_ORDERS)))
    if not _is_number(spec.norm_mean):
        problems.append(("norm_mean", spec.norm_mean, "a finite number"))
    if not _is_number(spec.norm_scale) or spec.norm_scale <= 0:
        problems.append(("norm_scale", spec.norm_scale, "a positive number"))
    if not isinstance(spec.crop_convention, str) or spec.crop_convention not in CONVENTIONS:
        problems.append(("crop_convention", spec.crop_convention, f"one of {', '.join(sorted(CONVENTIONS))}"))
    return problems


@dataclass(frozen=True)
class ModelSpec:
    """How to build and feed a regressor. Input crops are ``(B, input_size, input_size, 3)`` uint8 in
    ``color_order``, normalised as ``(x - norm_mean) * norm_scale``; with ``channels == 4`` the landmark map
    (already in [-1, 1]) is the 4th channel. ``crop_convention`` names the model-frame → crop-pixel map."""

    name: str = "model"
    backbone: str = "mobilenet_v1"
    width: float = 1.0
    input_size: int = 120
    channels: int = 3
    num_params: int = NUM_PARAMS
    color_order: str = "BGR"
    norm_mean: float = 127.5
    norm_scale: float = 1.0 / 128.0
    crop_convention: str = "3ddfa_v2"

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> "ModelSpec":
        """A checked copy with ``changes``."""
        return ModelSpec(**{**self.to_dict(), **changes}).validate()

    def validate(self) -> "ModelSpec":
        """``self``, or ValueError naming the first bad field, its value and what is allowed."""
        problem = first_problem(spec_problems(self))
        if problem:
            raise ValueError(problem)
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        """A checked spec from a mapping (a task config's ``spec``); ValueError names an unknown or bad key."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown model spec key(s) {unknown} (known: {', '.join(cls.__dataclass_fields__)})")
        return cls(**d).validate()
