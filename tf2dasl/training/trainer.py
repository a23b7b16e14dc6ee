"""``train(config, out_dir, init, resume)``: 2DASL training with ``keras fit`` — data, models, strategy, callbacks.

RUN_DIR layout: ``config.yaml`` (the resolved config), ``checkpoints/ckpt-NNNN.npz`` (full state after each
epoch), ``history.csv``, ``logs/`` (TensorBoard), ``holdout.txt`` (held-out faces), ``best/`` and finally
``model/`` — a model directory loadable by ``evaluate``, ``reconstruct`` and ``export``.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from ..config import dump_config, to_dict
from ..errors import UserError
from ..io.morphable_files import load_morphable_model
from ..model import FaceModel, ModelSpec
from ..models.critic import SelfCritic
from ..models.dasl import DASLModel, expand_to_four_channels
from ..models.morphable import MorphableLayer
from .callbacks import EpochCheckpoint, StopOnNaN, Validation, checkpoint_meta, latest_checkpoint, load_state
from .config import TrainConfig, expand_path


class TrainingError(UserError):
    """Training cannot start or went wrong in a way the user can fix (config, data, divergence)."""


CONFIG_FILE = "config.yaml"
#: the one config key a resumed run may change (only upwards: train longer)
RESUMABLE_KEY = "epochs"
_ABSENT = object()  # a key missing from one side of a config comparison


def _plain(cfg: TrainConfig) -> dict:
    """``cfg`` as its config.yaml reads back (tuples → lists, floats as YAML writes them)."""
    return yaml.safe_load(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _lookup(tree, key: str):
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _ABSENT
        tree = tree[part]
    return tree


def _config_diff(saved, now, key: str = "") -> list[tuple[str, object, object]]:
    """``(dotted key, saved value, current value)`` for every leaf that differs, in file order."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for k in list(saved) + [k for k in now if k not in saved]:
            out += _config_diff(saved.get(k, _ABSENT), now.get(k, _ABSENT), f"{key}.{k}" if key else str(k))
        return out
    return [] if saved == now else [(key, saved, now)]


def _show(value) -> str:
    if value is _ABSENT:
        return "(not set)"
    return "null" if value is None else str(value)


def _check_resumed_config(cfg: TrainConfig, path: Path) -> bool:
    """Compare the config given now with the run's ``config.yaml``: anything but a larger ``epochs`` differing is a
    :class:`TrainingError` (a resumed run must be the same run). True when ``config.yaml`` is to be rewritten."""
    if not path.is_file():
        print(f"{path} is missing: recording the config given now (its match with the run cannot be checked)")
        return True
    try:
        saved = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TrainingError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); restore it or choose another "
                            "--out") from None
    if not isinstance(saved, dict):
        raise TrainingError(f"{path}: expected the run's config (a mapping); restore it or choose another --out")
    defaults = _plain(TrainConfig())
    diff = [(k, old, new) for k, old, new in _config_diff(saved, _plain(cfg))
            if not (old is _ABSENT and new == _lookup(defaults, k))]  # a key added to tf2dasl since, at its default
    changed = [d for d in diff if d[0] != RESUMABLE_KEY]
    if changed:
        what = "; ".join(f"{k}: {_show(old)} in {path}, {_show(new)} now" for k, old, new in changed)
        raise TrainingError(f"--resume with a different config ({what}); resume with the run's config "
                            f"(only a larger {RESUMABLE_KEY} is allowed) or choose another --out")
    if not diff:
        return False
    old = saved.get(RESUMABLE_KEY)
    if not isinstance(old, int) or cfg.epochs < old:
        raise TrainingError(f"--resume with {RESUMABLE_KEY}: {_show(old)} in {path}, {cfg.epochs} now; a run can only "
                            f"be made longer: pass --epochs {_show(old)} or more")
    print(f"{path}: {RESUMABLE_KEY} {old} -> {cfg.epochs} (continuing the run longer; config.yaml updated)")
    return True


def make_deterministic() -> None:
    """Identical results run after run: TF's op determinism (deterministic GPU kernels, or an error naming an op
    that has none) and one thread per op and between ops (multi-threaded CPU kernels add partial sums in an
    order that depends on scheduling). Must run before TensorFlow executes its first op in this process."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        if (tf.config.threading.get_intra_op_parallelism_threads(),
                tf.config.threading.get_inter_op_parallelism_threads()) != (1, 1):
            raise TrainingError("deterministic: true needs TensorFlow's thread pools set before its first op; start "
                                "training in a fresh process (tf2dasl train does) or call "
                                "tf2dasl.training.trainer.make_deterministic() first") from None
    tf.config.experimental.enable_op_determinism()


def _strategy(name: str):
    """``auto``: MirroredStrategy over the GPUs when there are several, else the default strategy;
    ``mirrored``: MirroredStrategy over the GPUs, or over the logical CPUs when there is no GPU (tests)."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def _optimizers(cfg: TrainConfig, total_steps: int, replicas: int = 1):
    """The regressor's and the critic's optimizers. With several replicas the regressor's optimizer gets no
    ``global_clipnorm``: :class:`DASLModel` clips the all-reduced gradient itself (``replica_clip_norm``)."""
    o = cfg.optim
    lr = o.lr
    if o.lr_schedule == "cosine":
        # Keras warms up linearly from initial_learning_rate to warmup_target, then decays from warmup_target
        lr = keras.optimizers.schedules.CosineDecay(0.0 if o.warmup_steps else o.lr,
                                                    max(total_steps - o.warmup_steps, 1), alpha=0.01,
                                                    warmup_target=o.lr if o.warmup_steps else None,
                                                    warmup_steps=o.warmup_steps)
    kw = {"global_clipnorm": o.clip_norm} if o.clip_norm and replicas == 1 else {}
    if o.optimizer == "sgd":
        reg = keras.optimizers.SGD(lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay or None,
                                   **kw)
    else:
        reg = keras.optimizers.AdamW(lr, weight_decay=o.weight_decay, **kw)
    critic = keras.optimizers.Adam(o.critic_lr, beta_1=o.critic_beta_1, beta_2=o.critic_beta_2)
    if cfg.mixed_precision:
        reg = keras.optimizers.LossScaleOptimizer(reg)
    return reg, critic


def _initial_models(cfg: TrainConfig, init: str | None):
    """→ (spec, regressor to train, teacher or None, morphable model)."""
    m = cfg.model
    if init:
        from .. import load_model

        base = load_model(init)
        mm, spec = base.mm, base.spec
        if spec.input_size != m.input_size:
            raise TrainingError(f"--init model has input size {spec.input_size}, config asks for {m.input_size}")
        reg = base.regressor
        if m.channels == 4 and spec.channels == 3:
            reg = expand_to_four_channels(base.regressor)
        elif m.channels != spec.channels:
            raise TrainingError(f"--init model has {spec.channels} channels, config asks for {m.channels}")
        teacher = base.regressor if cfg.teacher else None
        if teacher is reg:  # same channels: the teacher must be a frozen copy
            teacher = spec.build_regressor()
            teacher.set_weights(reg.get_weights())
        spec = ModelSpec(**{**spec.to_dict(), "channels": m.channels, "name": cfg.name,
                            "provenance": {"init": str(init), "init_provenance": spec.provenance}})
        return spec, reg, teacher, mm
    if not m.morphable_model:
        raise TrainingError("without --init MODEL_DIR the config needs model.morphable_model (a 3DDFA_V2 checkout)")
    mm = load_morphable_model(expand_path(m.morphable_model))
    if cfg.teacher and cfg.data.labelled is None:
        raise TrainingError("teacher: true needs --init MODEL_DIR (the teacher is the initial model)")
    spec = ModelSpec(name=cfg.name, backbone=m.backbone, width=m.width, input_size=m.input_size, channels=m.channels,
                     provenance={"init": None})
    return spec, spec.build_regressor(), None, mm


def _datasets(cfg: TrainConfig, seed: int, start_epoch: int, out: Path):
    """→ (dataset positioned at the first step of training epoch ``start_epoch``, steps per training epoch).

    A training epoch is ``steps_per_epoch`` steps (default: one pass over the wild faces); the data streams
    count their own passes, so a resumed run starts them at global step ``start_epoch * steps``."""
    from ..data.pipeline import (labelled_dataset, load_labelled, load_wild, mixed_dataset, steps_per_epoch,
                                 wild_dataset)

    d = cfg.data
    wild_cfg = d.wild
    wild_cfg.pts_folders = [expand_path(p) for p in wild_cfg.pts_folders]
    wild_cfg.lp_folders = [expand_path(p) for p in wild_cfg.lp_folders]
    wild_cfg.holdout_from = [expand_path(p) for p in wild_cfg.holdout_from]
    train_faces, held = load_wild(wild_cfg)
    print(train_faces.stats.summary("in-the-wild faces (train)"))
    (out / "holdout.txt").write_text("".join(f"{s.image_path}\n" for s in (held.samples if held else [])))
    steps = cfg.steps_per_epoch or steps_per_epoch(len(train_faces), wild_cfg.batch_size)
    wild = wild_dataset(train_faces, wild_cfg.augment, wild_cfg.batch_size, seed, start_step=start_epoch * steps)
    if d.labelled is not None:
        lab_cfg = d.labelled
        for k in ("root", "list_file", "params_file", "whitening_file"):
            setattr(lab_cfg, k, expand_path(getattr(lab_cfg, k)) or "")
        crops = load_labelled(lab_cfg)
        labelled = labelled_dataset(crops, lab_cfg.augment, lab_cfg.batch_size, seed, start_step=start_epoch * steps)
        return mixed_dataset(labelled, wild), steps
    return wild.map(lambda w: {"wild": w}), steps


def train(cfg: TrainConfig, out_dir: str | Path, init: str | None = None, resume: bool = False,
          verbose: int | str = "auto", extra_callbacks: list | None = None) -> Path:
    """Run (or resume) training; returns the final model directory ``out_dir/model``.

    ``extra_callbacks`` run after the built-in ones (validation, checkpoint, CSV, TensorBoard)."""
    from ..io.model_dir import save_model_dir

    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    last = latest_checkpoint(ckpt_dir) if ckpt_dir.is_dir() else None
    if resume and last is None:
        raise TrainingError(f"{out}: nothing to resume (no checkpoints/ckpt-*.npz); drop --resume to start a run there")
    if last is not None and not resume:
        raise TrainingError(f"{out} already holds a run (checkpoint {last.name}); pass --resume to continue it "
                            "or choose another --out")
    if cfg.deterministic:
        make_deterministic()
    if not resume or _check_resumed_config(cfg, out / CONFIG_FILE):
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / CONFIG_FILE)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    strategy = _strategy(cfg.distribute)
    with strategy.scope():  # every variable (regressor, teacher, critic, optimizers) is created mirrored
        spec, reg, teacher, mm = _initial_models(cfg, init)
    start_epoch = 0
    if last is not None:
        start_epoch = int(checkpoint_meta(last)["epoch"])
        if start_epoch >= cfg.epochs:
            print(f"{out}: all {cfg.epochs} epochs already done")
    ds, steps = _datasets(cfg, cfg.seed, start_epoch, out)

    with strategy.scope():
        model = DASLModel(
            reg, SelfCritic(cfg.model.critic_hidden, cfg.model.critic_param_slice),
            MorphableLayer(mm, spec.input_size, spec.crop_convention, dense=False), cfg.loss, teacher,
            freeze_bn=cfg.freeze_bn, norm_mean=spec.norm_mean, norm_scale=spec.norm_scale,
            map_lr_multiplier=cfg.optim.map_lr_multiplier,
            replica_clip_norm=cfg.optim.clip_norm if strategy.num_replicas_in_sync > 1 else None)
        reg_opt, critic_opt = _optimizers(cfg, steps * cfg.epochs, strategy.num_replicas_in_sync)
        model.compile(reg_opt, critic_opt, jit_compile=cfg.jit_compile)
        model.build()
        model.build_optimizers()
    if last is not None:
        load_state(model, last)
        print(f"resuming {out} after epoch {start_epoch} ({last.name})")

    def face_model():
        return FaceModel(spec, model.regressor, mm)

    best_dir = out / "best"
    callbacks = [StopOnNaN()]
    validation = None
    if cfg.data.validation:
        from ..evaluate import load_aflw2000

        validation = Validation(load_aflw2000(expand_path(cfg.data.validation), spec.input_size), face_model,
                                on_best=lambda epoch, nme: _save_best(face_model(), best_dir, epoch, nme))
        if resume and best_dir.is_dir():
            validation.best = _best_nme(best_dir)
        callbacks.append(validation)
    callbacks += [EpochCheckpoint(ckpt_dir), keras.callbacks.CSVLogger(str(out / "history.csv"), append=resume),
                  keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False, update_freq="epoch")]
    callbacks += list(extra_callbacks or [])
    t0 = time.time()
    if start_epoch < cfg.epochs:
        model.fit(ds, epochs=cfg.epochs, initial_epoch=start_epoch, steps_per_epoch=steps, callbacks=callbacks,
                  verbose=verbose, shuffle=False)  # the dataset shuffles itself, statelessly
    nan = callbacks[0].where
    if nan is not None:
        epoch, step, logs = nan
        bad = ", ".join(f"{k}={v:.4g}" for k, v in logs.items())
        raise TrainingError(f"training diverged: non-finite loss at epoch {epoch} step {step} ({bad}); lower "
                            "optim.lr, set optim.clip_norm, or check the data; --resume continues from the last "
                            "good epoch")
    final = out / "model"
    if final.exists():
        shutil.rmtree(final)
    if cfg.keep_best and best_dir.is_dir():
        shutil.copytree(best_dir, final)
    else:
        fm = face_model()
        fm.spec.provenance.update({"epochs": cfg.epochs})
        save_model_dir(fm, final)
    print(f"training took {time.time() - t0:.0f} s; model directory: {final}")
    return final


def _save_best(fm: FaceModel, best_dir: Path, epoch: int, nme: float) -> None:
    from ..io.model_dir import save_model_dir

    fm.spec.provenance.update({"epoch": epoch, "val_nme_aflw2000": nme})
    save_model_dir(fm, best_dir)


def _best_nme(best_dir: Path) -> float:
    from ..io.model_dir import read_model_meta

    return float(read_model_meta(best_dir)["spec"]["provenance"].get("val_nme_aflw2000", np.inf))


__all__ = ["train", "TrainingError"]
