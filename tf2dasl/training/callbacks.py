"""Callbacks of ``tf2dasl train``: per-epoch validation NME, resumable checkpoints, NaN stop."""
from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np

CKPT_PATTERN = "ckpt-{epoch:04d}.npz"


# ---------------------------------------------------------------------------- checkpoints
def _state_variables(model):
    """Every variable whose value a resumed run needs: the model's and both optimizers'."""
    return list(model.weights) + list(model.reg_optimizer.variables) + list(model.critic_optimizer.variables)


def save_state(model, path: Path, epoch: int, extra: dict | None = None) -> None:
    """Write all state variables and the number of finished epochs to ``path`` (atomically)."""
    variables = _state_variables(model)
    arrays = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
    meta = {"epoch": epoch, "paths": [v.path for v in variables], **(extra or {})}
    from ..io.outputs import atomic_file

    with atomic_file(path) as f:  # temporary file, fsync, rename: a crash or full disk keeps the last checkpoint
        np.savez(f, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)


def checkpoint_meta(path: Path) -> dict:
    """The metadata of a checkpoint (``epoch``: finished epochs, ``paths``, ``logs``) without loading it."""
    with np.load(path) as z:
        return json.loads(bytes(z["__meta__"]).decode())


def load_state(model, path: Path) -> dict:
    """Assign a checkpoint written by :func:`save_state`; returns its metadata (``epoch`` finished epochs)."""
    from ..errors import UserError

    variables = _state_variables(model)
    with np.load(path) as z:
        meta = json.loads(bytes(z["__meta__"]).decode())
        if len(meta["paths"]) != len(variables):
            raise UserError(f"{path}: checkpoint holds {len(meta['paths'])} variables, this model has "
                            f"{len(variables)} (was the config changed since the run started?)")
        for i, v in enumerate(variables):
            value = z[f"v{i:05d}"]
            if tuple(value.shape) != tuple(v.shape):
                raise UserError(f"{path}: variable {meta['paths'][i]} has shape {value.shape}, model wants {v.shape}")
            v.assign(value)
    return meta


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(ckpt_dir.glob("ckpt-*.npz"))
    found = [p for p in found if not p.name.endswith(".tmp.npz")]
    return found[-1] if found else None


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the full training state after every epoch into ``ckpt_dir`` (keeps the last ``keep``)."""

    def __init__(self, ckpt_dir: Path, keep: int = 2):
        super().__init__()
        self.ckpt_dir, self.keep = Path(ckpt_dir), keep
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        if getattr(self.model, "stop_training", False) and getattr(self.model, "_nan_stop", False):
            return
        save_state(self.model, self.ckpt_dir / CKPT_PATTERN.format(epoch=epoch + 1), epoch + 1,
                   {"logs": {k: float(v) for k, v in (logs or {}).items()}})
        for old in sorted(self.ckpt_dir.glob("ckpt-*.npz"))[:-self.keep]:
            old.unlink()


# ---------------------------------------------------------------------------- validation
class Validation(keras.callbacks.Callback):
    """After every epoch: 68-point NME (%) of the current regressor on AFLW2000-3D (3DDFA's protocol, original
    ground truth, balanced mean) logged as ``val_nme``; ``on_best(epoch, nme)`` is called on improvements.
    ``dense``: also the dense 2D NME (all vertices against the ``.mat`` fits, balanced mean) as ``val_dense_2d``."""

    def __init__(self, data, face_model_fn, on_best=None, every: int = 1, dense: bool = False):
        super().__init__()
        self.data, self.face_model_fn, self.on_best, self.every = data, face_model_fn, on_best, every
        self.dense = dense
        self.best = math.inf
        self.best_epoch = None

    def measure(self) -> dict:
        from ..evaluate import evaluate_aflw2000, make_predictor

        fm = self.face_model_fn()
        return evaluate_aflw2000(self.data, make_predictor("keras", fm, dense=self.dense), fm.spec.input_size,
                                 dense=("dense_2d",) if self.dense else ())

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or (epoch + 1) % self.every:
            return
        result = self.measure()
        nme = result["nme_2d_68"]["original"]["mean"]
        logs["val_nme"] = nme
        logs["val_nme_reannotated"] = result["nme_2d_68"].get("reannotated", {}).get("mean", float("nan"))
        dense = ""
        if "dense_2d" in result:
            logs["val_dense_2d"] = result["dense_2d"]["mean"]
            dense = f", dense 2D {logs['val_dense_2d']:.3f}"
        print(f"\nepoch {epoch + 1}: AFLW2000-3D NME {nme:.3f} (original) "
              f"{logs['val_nme_reannotated']:.3f} (re-annotated){dense}")
        if nme < self.best:
            self.best, self.best_epoch = nme, epoch + 1
            if self.on_best is not None:
                self.on_best(epoch + 1, nme)


class StopOnNaN(keras.callbacks.Callback):
    """Stops at the first non-finite loss and remembers where, for a clear message."""

    def __init__(self):
        super().__init__()
        self.where = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.where = (self._epoch + 1, batch + 1, {k: float(v) for k, v in logs.items()})
            self.model.stop_training = True
            self.model._nan_stop = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
