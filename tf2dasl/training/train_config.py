"""The training config: YAML (``configs/*.yaml``) mapped onto these dataclasses by :mod:`tf2dasl.io.yaml_config`.

Paths may use ``${TF2DASL_SHARED}`` (default ``../shared``), ``${TF2DASL_CACHE}`` (default ``~/.cache/tf2dasl``)
and other environment variables.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..data.data_config import LabelledDataConfig, WildDataConfig
from ..geometry.morphable_model import NUM_PARAMS
from ..models.loss_weights import LossWeights
from ..models.spec import NAME_PATTERN, first_problem, regressor_problems
from ..profiling.config import ProfiledDataConfig

#: the regressor's optimizers: SGD (with momentum, Nesterov and decoupled weight decay as configured), Adam (no weight
#: decay) and AdamW (Adam with decoupled weight decay)
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "cosine")
DISTRIBUTE_MODES = ("auto", "default", "mirrored", "multi_worker")
#: seeds numpy (and so ``keras.utils.set_random_seed``) accepts: 0 .. 2**32 - 1
MAX_SEED = 2**32 - 1


def _in_unit_interval(value: float) -> bool:
    """In [0, 1): momentum and Adam's betas."""
    return 0.0 <= value < 1.0


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
    critic_param_slice: list[int] = field(default_factory=lambda: [0, NUM_PARAMS])

    def validate(self):
        problem = first_problem(regressor_problems(self.backbone, self.width, self.input_size, self.channels))
        if problem:
            raise ValueError(problem)
        if not self.critic_hidden or any(h < 1 for h in self.critic_hidden):
            raise ValueError(f"critic_hidden must be a non-empty list of positive layer sizes, "
                             f"got {self.critic_hidden}")
        sl = list(self.critic_param_slice)
        if len(sl) != 2 or not 0 <= sl[0] < sl[1] <= NUM_PARAMS:
            raise ValueError(f"critic_param_slice must be [start, stop] with 0 <= start < stop <= {NUM_PARAMS} "
                             f"(e.g. [52, 62]: the expression parameters), got {sl}")


@dataclass
class OptimConfig:
    """Regressor optimizer (SGD Nesterov as 2DASL — ``weight_decay: 0.0005`` is 2DASL's —, Adam or AdamW) and the
    critic's Adam. ``weight_decay`` is decoupled weight decay (SGD, AdamW); Adam has none: a config that says
    ``adam`` with a weight decay is refused (say ``adamw``)."""

    optimizer: str = "sgd"
    lr: float = 0.004
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    clip_norm: float | None = 5.0
    #: gradient multiplier of the first kernel's landmark-map slice (zero-initialised when a 3-channel model is
    #: expanded to 4 channels; at 1.0 it hardly moves in a short fine-tune). SGD only: Adam's update ignores a
    #: gradient's scale. The scaled gradient enters ``clip_norm``'s global norm, so with clipping active the
    #: rest of the network's steps shrink too
    map_lr_multiplier: float = 1.0
    critic_lr: float = 1e-5
    critic_beta_1: float = 0.5
    critic_beta_2: float = 0.999

    def validate(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be {' or '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be {' or '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        for key in ("lr", "critic_lr"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{key} must be a positive number, got {value}")
        for key in ("momentum", "critic_beta_1", "critic_beta_2"):
            value = getattr(self, key)
            if not _in_unit_interval(value):
                raise ValueError(f"{key} must be in [0, 1), got {value}")
        for key in ("weight_decay", "map_lr_multiplier"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be a number >= 0, got {value}")
        if self.optimizer == "adam" and self.weight_decay:
            raise ValueError(f"optimizer adam has no weight decay, got weight_decay {self.weight_decay}: use "
                             "optimizer: adamw (Adam with decoupled weight decay) or weight_decay: 0")
        if self.map_lr_multiplier != 1.0 and self.optimizer != "sgd":
            raise ValueError(f"map_lr_multiplier acts through the gradient's scale, which {self.optimizer}'s update "
                             "ignores: use optimizer: sgd or map_lr_multiplier: 1.0")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.clip_norm is not None and not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise ValueError(f"clip_norm must be a positive number or null (no clipping), got {self.clip_norm}")


@dataclass
class DataConfig:
    """In-the-wild faces (``wild``), optional 3D-labelled crops (``labelled``, or ``profiled``: views made from the
    wild training faces by tf2dasl.profiling, before training, and cached), the AFLW2000-3D monitor and where
    teacher labels are cached."""

    wild: WildDataConfig = field(default_factory=WildDataConfig)
    labelled: LabelledDataConfig | None = None
    profiled: ProfiledDataConfig | None = None
    #: AFLW2000-3D folder whose 68-point NME is logged every epoch — a monitor only, never used to select
    validation: str | None = None
    #: also log the monitor's dense 2D NME (``val_dense_2d``; all 38,365 vertices: the model needs its dense bases)
    validation_dense: bool = False
    #: folder of the teacher-label cache (one file per teacher, keyed by crop; tf2dasl.data.teacher)
    teacher_cache: str = "${TF2DASL_CACHE}/teacher"


@dataclass
class TrainConfig:
    name: str = "dasl"
    seed: int = 0
    epochs: int = 10
    #: steps per epoch, >= 1 (null: one pass over the wild faces)
    steps_per_epoch: int | None = None
    #: a frozen copy of the initial model labels the wild faces (with 3D-labelled faces mixed in too: the wild faces'
    #: teacher terms then sit beside the labelled faces' own, scaled by loss.wild_teacher, by default 0: none)
    teacher: bool = True
    #: the ``anchor68`` target is the teacher's 68 landmarks averaged over the crop and its mirror image (mirrored
    #: back), not the projection of its parameters for the crop alone (tf2dasl.data.teacher.flip_average_landmarks)
    teacher_flip_average: bool = False
    #: the teacher's parameter labels of both views are one fit: its fits of the crop and of the mirror image,
    #: averaged (tf2dasl.profiling.fitting.MeshFitter.flip_fit_views, as the profiling sources are fitted)
    teacher_flip_fit: bool = False
    #: null, or degrees: the 68-point wild faces' teacher labels within this |yaw| of frontal are refined to their
    #: manual 68 points, the jaw included (camera and expression; tf2dasl.profiling.refine.refine_teacher_labels), so
    #: that they carry the face size the annotated jaw implies rather than the teacher's
    teacher_refine_max_yaw: float | None = None
    freeze_bn: bool = True
    mixed_precision: bool = False
    jit_compile: bool = False
    #: "auto" (MirroredStrategy when several GPUs are visible), "default" or "mirrored"
    distribute: str = "auto"
    #: keep the epoch with the best NME on the training data's held-out faces (AFLW's validation split, else the
    #: 300-W hold-out) as RUN_DIR/model (else the last epoch); never selected on AFLW2000-3D
    keep_best: bool = False
    #: identical runs: TF's op determinism and, on CPU, one thread per op (multi-threaded CPU kernels sum in a
    #: varying order, so two default runs drift apart from ~1e-7 after the first steps); slower
    deterministic: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self):
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"name must be 1-128 letters, digits, '_', '.' or '-' (it names the trained model and "
                             f"its files), got {self.name!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be in [0, {MAX_SEED}], got {self.seed}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, or null for one pass over the wild faces, "
                             f"got {self.steps_per_epoch}")
        if self.distribute not in DISTRIBUTE_MODES:
            raise ValueError(f"distribute must be one of {', '.join(DISTRIBUTE_MODES)}, got {self.distribute!r}")
        if self.teacher_flip_fit and not self.teacher:
            raise ValueError("teacher_flip_fit averages the teacher's labels: it needs teacher: true")
        if self.teacher_refine_max_yaw is not None and not (self.teacher and self.teacher_refine_max_yaw > 0):
            raise ValueError(f"teacher_refine_max_yaw refines the teacher's labels: it needs teacher: true and a "
                             f"positive angle, got {self.teacher_refine_max_yaw}")
        if self.data.labelled is not None and self.data.profiled is not None:
            raise ValueError("data.labelled and data.profiled are both 3D-labelled streams: give one of them")
        w = self.data.wild
        if self.keep_best and not ((w.aflw is not None and w.aflw.val_every > 0) or w.holdout_every > 0):
            raise ValueError("keep_best selects on held-out training faces: set data.wild.aflw.val_every or "
                             "data.wild.holdout_every (AFLW2000-3D is a monitor, never selected on)")


def expand_path(path: str | None) -> str | None:
    """``${TF2DASL_SHARED}`` (default ``../shared``) and other environment variables expanded."""
    if path is None:
        return None
    env = dict(os.environ)
    env.setdefault("TF2DASL_SHARED", os.path.join("..", "shared"))
    env.setdefault("TF2DASL_CACHE", os.path.join("~", ".cache", "tf2dasl"))
    out = path
    for k, v in env.items():
        out = out.replace("${" + k + "}", v)
    return os.path.expanduser(out)


def expand_data_paths(cfg: TrainConfig) -> None:
    """The data paths of ``cfg`` (wild faces, AFLW, 3D-labelled crops, the profiled faces' folder) expanded in place
    (:func:`expand_path`)."""
    w = cfg.data.wild
    w.pts_folders = [expand_path(p) for p in w.pts_folders]
    w.lp_folders = [expand_path(p) for p in w.lp_folders]
    w.holdout_from = [expand_path(p) for p in w.holdout_from]
    if w.aflw is not None:
        w.aflw.root, w.aflw.points_file = expand_path(w.aflw.root), expand_path(w.aflw.points_file)
    if cfg.data.labelled is not None:
        lab = cfg.data.labelled
        for k in ("root", "list_file", "params_file", "whitening_file"):
            setattr(lab, k, expand_path(getattr(lab, k)) or "")
    if cfg.data.profiled is not None:
        cfg.data.profiled.folder = expand_path(cfg.data.profiled.folder)
