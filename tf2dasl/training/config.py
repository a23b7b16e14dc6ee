"""The training config: YAML (``configs/*.yaml``) mapped onto these dataclasses by :mod:`tf2dasl.config`.

Paths may use ``${TF2DASL_SHARED}`` (default ``../shared``) and other environment variables.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..data.pipeline import LabelledDataConfig, WildDataConfig
from ..models.dasl import LossWeights


@dataclass
class ModelConfig:
    """The regressor to train (ignored parts come from ``--init`` when given) and the critic."""

    backbone: str = "mobilenet_v1"
    width: float = 0.5
    input_size: int = 120
    channels: int = 4
    #: folder with a morphable model (3DDFA_V2 checkout or 3DDFA v1 train.configs) when not using --init
    morphable_model: str | None = None
    critic_hidden: list[int] = field(default_factory=lambda: [512, 256])
    critic_param_slice: list[int] = field(default_factory=lambda: [0, 62])

    def validate(self):
        if self.channels not in (3, 4):
            raise ValueError("model.channels must be 3 or 4")


@dataclass
class OptimConfig:
    """Regressor optimizer (SGD Nesterov as 2DASL, or Adam) and the critic's Adam."""

    optimizer: str = "sgd"
    lr: float = 0.004
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    clip_norm: float | None = 5.0
    #: learning-rate multiplier of the first kernel's landmark-map slice (zero-initialised when a 3-channel
    #: model is expanded to 4 channels; at 1.0 it hardly moves in a short fine-tune)
    map_lr_multiplier: float = 1.0
    critic_lr: float = 1e-5
    critic_beta_1: float = 0.5
    critic_beta_2: float = 0.999

    def validate(self):
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError("optim.optimizer must be sgd or adam")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError("optim.lr_schedule must be constant or cosine")


@dataclass
class DataConfig:
    """In-the-wild faces (``wild``), optional 3D-labelled crops (``labelled``) and the validation set."""

    wild: WildDataConfig = field(default_factory=WildDataConfig)
    labelled: LabelledDataConfig | None = None
    #: AFLW2000-3D folder for the per-epoch validation NME (none: no validation)
    validation: str | None = None


@dataclass
class TrainConfig:
    name: str = "dasl"
    seed: int = 0
    epochs: int = 10
    #: steps per epoch (default: one pass over the wild faces)
    steps_per_epoch: int | None = None
    #: a frozen copy of the initial model labels the wild faces when no labelled data is given
    teacher: bool = True
    freeze_bn: bool = True
    mixed_precision: bool = False
    jit_compile: bool = False
    #: "auto" (MirroredStrategy when several GPUs are visible), "default" or "mirrored"
    distribute: str = "auto"
    #: keep the epoch with the best validation NME as RUN_DIR/model (else the last epoch)
    keep_best: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self):
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.distribute not in ("auto", "default", "mirrored"):
            raise ValueError("distribute must be auto, default or mirrored")


def expand_path(path: str | None) -> str | None:
    """``${TF2DASL_SHARED}`` (default ``../shared``) and other environment variables expanded."""
    if path is None:
        return None
    env = dict(os.environ)
    env.setdefault("TF2DASL_SHARED", os.path.join("..", "shared"))
    out = path
    for k, v in env.items():
        out = out.replace("${" + k + "}", v)
    return os.path.expanduser(out)
