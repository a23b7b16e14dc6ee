"""``train(config, out_dir, init, resume)``: 2DASL training with ``keras fit`` — data, teacher labels, models,
strategy, callbacks.

RUN_DIR layout: ``tf2dasl-manifest.jsonl`` (each run's record: a killed run's temporary folders are removed by
the next, and nothing else), ``config.yaml`` (the resolved config), ``checkpoints/`` (``tf.train.Checkpoint`` of
the model and both optimizers after each epoch), ``history.csv``, ``logs/`` (TensorBoard), ``holdout.txt``
(held-out 300-W faces), ``aflw_val.txt`` (AFLW's validation split), ``best/`` (the best epoch on the held-out
faces, with ``keep_best``) and finally ``model/`` — a model directory loadable by ``evaluate``, ``reconstruct``
and ``export``.

One job (a run, from config to model directory) whose steps —
strategy, teacher labels, data, models, resume, callbacks, the final model — each a small function here, depend
on each other's order; the pieces they call (data, models, callbacks, validation) live in their own modules.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from ..data.augment import mirror_labels
from ..data.data_config import LabelledDataConfig
from ..data.datasets import load_labelled, load_wild_data
from ..data.landmark_sets import LANDMARKS_68
from ..data.pipeline import labelled_dataset, mixed_dataset, plain_crops, wild_sources_dataset
from ..data.teacher import TeacherCache, flip_average_landmarks, teacher_labels
from ..errors import UserError
from ..evaluate import load_aflw2000
from ..inference.keras_runtime import KerasPredictor
from ..io.model_dir import load_model_dir, save_model_dir
from ..io.model_files import read_model_meta
from ..io.morphable_files import load_morphable_model
from ..io.outputs import atomic_dir, write_text
from ..io.run_folder import RunFolder
from ..io.yaml_config import dump_config, to_dict
from ..models.critic import SelfCritic
from ..models.dasl import DASLModel, expand_to_four_channels
from ..models.morphable import MorphableLayer
from ..models.spec import ModelSpec
from ..models.task import FaceTask
from ..profiling.fitting import MeshFitter
from ..profiling.refine import refine_teacher_labels
from ..profiling.teacher import teacher_fingerprint
from .callbacks import CsvHistory, EpochCheckpoint, StopOnNaN, TrainingState
from .profiled import labelled_data
from .train_config import TrainConfig, expand_data_paths, expand_path
from .validation import HoldoutSet, Validation, holdout_sets, point_decoder


class TrainingError(UserError):
    """Training cannot start or went wrong in a way the user can fix (config, data, divergence)."""


CONFIG_FILE = "config.yaml"
#: the held-out faces of each landmark set, listed in the run folder
HOLDOUT_FILES = {"68": "holdout.txt", "aflw21": "aflw_val.txt"}
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
    """``auto``: MultiWorkerMirroredStrategy when ``TF_CONFIG`` names a cluster of several workers, else
    MirroredStrategy over the GPUs when there are several, else the default strategy; ``mirrored``:
    MirroredStrategy over the GPUs, or over the logical CPUs when there is no GPU (tests); ``multi_worker``:
    MultiWorkerMirroredStrategy from ``TF_CONFIG`` (each worker runs ``tf2dasl train`` with the same arguments)."""
    if name == "multi_worker" or (name == "auto" and _tf_config_workers() > 1):
        if _tf_config_workers() < 1:
            raise TrainingError("distribute: multi_worker needs TF_CONFIG naming the cluster and this worker "
                                '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                                '"task": {"type": "worker", "index": 0}})')
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def _tf_config_workers() -> int:
    """Workers (incl. a chief) TF_CONFIG names; 0 without TF_CONFIG; a malformed TF_CONFIG is a TrainingError."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
        return len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    except (ValueError, AttributeError):
        raise TrainingError("TF_CONFIG is not valid JSON with a cluster (see docs/training.md: two or more "
                            "machines)") from None


def _is_chief(strategy) -> bool:
    """Whether this process writes the run folder: always, except on the non-chief workers of a multi-worker run."""
    resolver = strategy.cluster_resolver
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


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
    elif o.optimizer == "adamw":
        reg = keras.optimizers.AdamW(lr, weight_decay=o.weight_decay, **kw)
    else:  # adam: no weight decay (the config refuses one)
        reg = keras.optimizers.Adam(lr, **kw)
    critic = keras.optimizers.Adam(o.critic_lr, beta_1=o.critic_beta_1, beta_2=o.critic_beta_2)
    if cfg.mixed_precision:
        reg = keras.optimizers.LossScaleOptimizer(reg)
    return reg, critic


def _initial_models(cfg: TrainConfig, init: str | None) \
        -> tuple[ModelSpec, object, FaceTask | None, object, dict, FaceTask | None]:
    """→ (spec, regressor to train, frozen teacher or None, morphable model, provenance, the loaded ``--init`` model
    or None)."""
    m = cfg.model
    if init:
        base = load_model_dir(init)
        mm, spec = base.mm, base.spec
        if spec.input_size != m.input_size:
            raise TrainingError(f"--init model has input size {spec.input_size}, config asks for {m.input_size}")
        reg = base.regressor
        if m.channels == 4 and spec.channels == 3:
            reg = expand_to_four_channels(base.regressor)
        elif m.channels != spec.channels:
            raise TrainingError(f"--init model has {spec.channels} channels, config asks for {m.channels}")
        teacher = None
        if cfg.teacher:  # a frozen copy: the trained regressor may be the init model's own
            teacher = FaceTask(spec, mm)
            teacher.regressor.set_weights(base.regressor.get_weights())
        return spec.replace(channels=m.channels, name=cfg.name), reg, teacher, mm, \
            {"init": str(init), "init_provenance": base.provenance}, base
    if not m.morphable_model:
        raise TrainingError("without --init MODEL_DIR the config needs model.morphable_model (a 3DDFA_V2 checkout)")
    mm = load_morphable_model(expand_path(m.morphable_model))
    if cfg.teacher and cfg.data.labelled is None:
        raise TrainingError("teacher: true needs --init MODEL_DIR (the teacher is the initial model)")
    spec = ModelSpec(name=cfg.name, backbone=m.backbone, width=m.width, input_size=m.input_size, channels=m.channels)
    return spec, FaceTask(spec, mm).regressor, None, mm, {"init": None}, None


def _attach_teacher_labels(cfg: TrainConfig, wild, teacher: FaceTask, log=print) -> None:
    """The teacher's parameters for every training face's plain and mirrored crop, from the cache or computed once
    (then cached), attached to each source's faces (``faces.teacher``; with ``teacher_flip_average`` also their
    flip-averaged 68 landmarks, ``faces.teacher_landmarks``). With ``teacher_flip_fit`` both views' labels become
    one flip-averaged fit, then with ``teacher_refine_max_yaw`` a 68-point source's near-frontal labels are refined
    to the manual points."""
    predictor, decoder = KerasPredictor(teacher), teacher.decoder
    cache = TeacherCache(expand_path(cfg.data.teacher_cache), teacher_fingerprint(teacher))
    fitter = MeshFitter(teacher.mm, decoder.size, decoder.convention) if cfg.teacher_flip_fit else None  # built once
    for src in wild.sources:
        t0 = time.time()
        crops, points = plain_crops(src.faces, src.augment)
        labels, computed = teacher_labels(crops, lambda c: predictor.predict(c).params, cache)
        size, changes = crops.shape[1], ""
        if fitter is not None:
            labels = fitter.flip_fit_views(labels)
            changes = "; both views one flip-averaged fit"
        if cfg.teacher_refine_max_yaw is not None and src.landmark_set == LANDMARKS_68.name:
            mirrored = mirror_labels(points, size, src.faces.roi_side * src.faces.pixel_scale / size)
            labels, n = refine_teacher_labels(teacher.mm, labels, points, mirrored, size, decoder.convention,
                                              cfg.teacher_refine_max_yaw)
            changes += f"; {n} of {labels.size // labels.shape[-1]} refined to the manual points"
        src.faces.teacher = labels
        if cfg.teacher_flip_average:
            src.faces.teacher_landmarks = flip_average_landmarks(decoder.landmarks(labels[:, 0])[..., :2],
                                                                 decoder.landmarks(labels[:, 1])[..., :2], size)
        log(f"teacher labels ({src.landmark_set}-point source, {len(crops)} faces): {computed} computed, "
            f"{len(crops) - computed} from {cache.path}{changes} ({time.time() - t0:.0f} s)")


def _holdouts(wild, is_chief: bool, out: Path) -> list[HoldoutSet]:
    """The held-out faces as plain crops, listed in ``holdout.txt`` (300-W) and ``aflw_val.txt`` (AFLW)."""
    if is_chief:
        for name, file in HOLDOUT_FILES.items():
            faces = wild.holdout.get(name)
            write_text(out / file, "".join(f"{s.image_path}\n" for s in (faces.samples if faces else [])))
    return holdout_sets(wild)


def _datasets(lab_cfg: LabelledDataConfig | None, wild, seed: int, start_epoch: int, steps: int, convention):
    """→ the training dataset positioned at the first step of training epoch ``start_epoch``: every source (and
    the labelled stream ``lab_cfg``) counts its own passes, so a resumed run starts them at global step
    ``start_epoch * steps``."""
    ds = wild_sources_dataset(wild.sources, wild.layout, seed, start_step=start_epoch * steps, convention=convention)
    if lab_cfg is not None:
        labelled = labelled_dataset(load_labelled(lab_cfg), lab_cfg.augment, lab_cfg.batch_size, seed,
                                    start_step=start_epoch * steps)
        return mixed_dataset(labelled, ds)
    return ds.map(lambda w: {"wild": w})


def _check_run_dir(out: Path, resume: bool) -> str | None:
    """The checkpoint to resume from (None: a new run); refuses what cannot be done in ``out``."""
    ckpt_dir = out / "checkpoints"
    last = TrainingState.latest(ckpt_dir)
    if resume and last is None:
        raise TrainingError(f"{out}: nothing to resume (no checkpoint in {ckpt_dir}); drop --resume to start a run "
                            "there")
    if last is not None and not resume:
        raise TrainingError(f"{out} already holds a run (checkpoint {Path(last).name}); pass --resume to continue it "
                            "or choose another --out")
    return last


def train(cfg: TrainConfig, out_dir: str | Path, init: str | None = None, resume: bool = False,
          verbose: int | str = "auto", extra_callbacks: list | None = None) -> Path:
    """Run (or resume) training; returns the final model directory ``out_dir/model``.

    ``extra_callbacks`` run after the built-in ones (validation, checkpoint, CSV, TensorBoard)."""
    out = Path(out_dir)
    last = _check_run_dir(out, resume)
    if cfg.data.profiled is not None and not init:
        raise TrainingError("data.profiled needs --init MODEL_DIR: the model whose fits of the wild faces are profiled")
    if cfg.deterministic:
        make_deterministic()
    strategy = _strategy(cfg.distribute)  # MultiWorkerMirroredStrategy must exist before other TF work
    chief = _is_chief(strategy)
    if chief:  # record this process's temporaries in the run folder's manifest; remove a killed run's
        RunFolder(out, {"command": "train", "resume": resume}).close()
    if chief and (not resume or _check_resumed_config(cfg, out / CONFIG_FILE)):
        dump_config(cfg, out / CONFIG_FILE)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    with strategy.scope():  # every variable (regressor, critic, optimizers) is created mirrored
        spec, reg, teacher, mm, provenance, base = _initial_models(cfg, init)
    start_epoch = TrainingState.finished_epochs(last) if last is not None else 0
    if start_epoch >= cfg.epochs:
        print(f"{out}: all {cfg.epochs} epochs already done")
    expand_data_paths(cfg)
    labelled = labelled_data(cfg, init, teacher if teacher is not None else base)  # views made before training
    wild = load_wild_data(cfg.data.wild)
    if teacher is not None:
        _attach_teacher_labels(cfg, wild, teacher)
    holdouts = _holdouts(wild, chief, out)
    steps = cfg.steps_per_epoch or wild.steps_per_epoch()
    ds = _datasets(labelled, wild, cfg.seed, start_epoch, steps,
                   teacher.decoder.convention if teacher is not None else None)

    layout = wild.layout
    if layout.size > 68:
        provenance["landmark_sets"] = layout.to_dict()
    with strategy.scope():
        task = FaceTask(spec, mm, regressor=reg, provenance=provenance)
        points = MorphableLayer(layout.point_model(mm), spec.input_size, spec.crop_convention, name="points")
        model = DASLModel(
            task, SelfCritic(cfg.model.critic_hidden, cfg.model.critic_param_slice), cfg.loss, points,
            layout.loss_points(cfg.loss.landmark_points), freeze_bn=cfg.freeze_bn,
            map_lr_multiplier=cfg.optim.map_lr_multiplier,
            replica_clip_norm=cfg.optim.clip_norm if strategy.num_replicas_in_sync > 1 else None)
        reg_opt, critic_opt = _optimizers(cfg, steps * cfg.epochs, strategy.num_replicas_in_sync)
        model.compile(reg_opt, critic_opt, jit_compile=cfg.jit_compile)
        model.build()
        model.build_optimizers()
        ckpt_dir = out / "checkpoints"
        state = TrainingState(model, ckpt_dir, write_dir=None if chief else tempfile.mkdtemp(prefix="tf2dasl-ckpt-"))
    if last is not None:
        state.restore(last)
        print(f"resuming {out} after epoch {start_epoch} ({Path(last).name})")

    best_dir = out / "best"
    nan_stop = StopOnNaN()
    callbacks = [nan_stop]
    select = next((h.landmark_set for h in holdouts if h.landmark_set == "aflw21"),
                  holdouts[0].landmark_set if holdouts else None)
    aflw2000 = None
    if cfg.data.validation:
        aflw2000 = load_aflw2000(expand_path(cfg.data.validation), spec.input_size)
    if holdouts or aflw2000 is not None:
        validation = Validation(lambda: task, layout, point_decoder(layout, mm, spec.input_size, spec.crop_convention),
                                holdouts, aflw2000, select if cfg.keep_best else None,
                                on_best=(lambda epoch, nme: _save_best(task, best_dir, epoch, nme, select))
                                if chief else None, dense=cfg.data.validation_dense and aflw2000 is not None)
        if resume and best_dir.is_dir():
            validation.best = _best_nme(best_dir)
        callbacks.append(validation)
    callbacks.append(EpochCheckpoint(state, nan_stop))
    if chief:
        callbacks += [CsvHistory(out / "history.csv", append=resume),
                      keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False, update_freq="epoch")]
    callbacks += list(extra_callbacks or [])
    t0 = time.time()
    if start_epoch < cfg.epochs:
        model.fit(ds, epochs=cfg.epochs, initial_epoch=start_epoch, steps_per_epoch=steps, callbacks=callbacks,
                  verbose=verbose, shuffle=False)  # the dataset shuffles itself, statelessly
    if nan_stop.stopped is not None:
        raise TrainingError(nan_stop.stopped.message())
    final = out / "model"
    if chief:
        if cfg.keep_best and best_dir.is_dir():
            with atomic_dir(final, replace=final.exists()) as tmp:
                shutil.copytree(best_dir, tmp, dirs_exist_ok=True)
        else:
            task.provenance.update({"epochs": cfg.epochs})
            save_model_dir(task, final)
    print(f"training took {time.time() - t0:.0f} s; model directory: {final}")
    return final


def _save_best(task: FaceTask, best_dir: Path, epoch: int, nme: float, metric: str) -> None:
    task.provenance.update({"epoch": epoch, "selected_on": f"val_{metric}_nme", "val_nme": nme})
    save_model_dir(task, best_dir)


def _best_nme(best_dir: Path) -> float:
    return float(read_model_meta(best_dir).get("provenance", {}).get("val_nme", np.inf))


__all__ = ["train", "TrainingError"]
