"""Training state and callbacks of ``tf2dasl train``: ``tf.train.Checkpoint`` state after every epoch, a NaN stop with
a public result, ``history.csv`` (written through :mod:`tf2dasl.io.streams`), and the per-epoch validation
(:mod:`.validation`).
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..errors import UserError
from ..io.streams import LineFile

#: checkpoint prefix inside ``RUN_DIR/checkpoints`` (``ckpt-N.index`` / ``ckpt-N.data-*``, N = finished epochs)
CKPT_NAME = "ckpt"


class CheckpointError(UserError):
    """A run folder whose checkpoints this version cannot continue (one line naming it and the fix)."""


class TrainingState:
    """Everything a resumed run needs — the model (regressor, critic, point bases), both optimizers and the number
    of finished epochs — as one ``tf.train.Checkpoint`` managed by a ``tf.train.CheckpointManager`` (keeps the
    last ``keep``; the manager writes each checkpoint's files and then its ``checkpoint`` index atomically).

    ``write_dir``: where this process writes (a non-chief worker of a multi-worker run writes to a scratch folder
    it then deletes; only the chief's checkpoints count)."""

    def __init__(self, model, ckpt_dir: Path, keep: int = 2, write_dir: Path | None = None):
        self.dir = Path(ckpt_dir)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="finished_epochs")
        self.checkpoint = tf.train.Checkpoint(model=model, reg_optimizer=model.reg_optimizer,
                                              critic_optimizer=model.critic_optimizer, epoch=self.epoch)
        self.scratch = write_dir is not None and Path(write_dir) != self.dir
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(write_dir or self.dir), max_to_keep=keep,
                                                  checkpoint_name=CKPT_NAME)

    @staticmethod
    def latest(ckpt_dir: Path) -> str | None:
        """The newest checkpoint prefix in ``ckpt_dir`` (None when there is none)."""
        return tf.train.latest_checkpoint(str(ckpt_dir)) if Path(ckpt_dir).is_dir() else None

    @staticmethod
    def finished_epochs(prefix: str) -> int:
        """Finished epochs recorded in a checkpoint, read without building a model."""
        return int(tf.train.load_variable(prefix, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))

    def restore(self, prefix: str) -> int:
        """Assign a checkpoint to the model and both optimizers (every saved value must find its variable);
        returns the finished epochs."""
        try:
            self.checkpoint.restore(prefix).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as exc:
            raise CheckpointError(f"{prefix}: does not fit this model ({str(exc).splitlines()[0]}); was the "
                                  "config changed since the run started?") from None
        return int(self.epoch.numpy())

    def save(self, epochs_done: int) -> None:
        self.epoch.assign(epochs_done)
        self.manager.save(checkpoint_number=epochs_done)
        if self.scratch:
            tf.io.gfile.rmtree(self.manager.directory)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the :class:`TrainingState` after every epoch, unless ``nan_stop`` stopped the epoch."""

    def __init__(self, state: TrainingState, nan_stop: "StopOnNaN | None" = None):
        super().__init__()
        self.state, self.nan_stop = state, nan_stop

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_stop is not None and self.nan_stop.stopped is not None:
            return
        self.state.save(epoch + 1)


@dataclass
class NaNStop:
    """Where training stopped: 1-based ``epoch`` and ``step``, and the ``logs`` of that step."""

    epoch: int
    step: int
    logs: dict = field(default_factory=dict)

    def message(self) -> str:
        bad = ", ".join(f"{k}={v:.4g}" for k, v in self.logs.items())
        return (f"training diverged: non-finite loss at epoch {self.epoch} step {self.step} ({bad}); lower optim.lr, "
                "set optim.clip_norm, or check the data; --resume continues from the last good epoch")


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras' ``TerminateOnNaN`` that also says where: ``stopped`` is a :class:`NaNStop` after a non-finite loss
    (None otherwise)."""

    def __init__(self):
        super().__init__()
        self.stopped: NaNStop | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(np.asarray(loss))):
            self.stopped = NaNStop(self._epoch + 1, batch + 1, {k: float(np.asarray(v)) for k, v in logs.items()})
        super().on_batch_end(batch, logs)


def _csv_row(values) -> str:
    """One CSV row (no line end), quoted as the ``csv`` module quotes."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


class CsvHistory(keras.callbacks.Callback):
    """``history.csv``: a header (``epoch`` and the sorted log keys), then one row per epoch, the columns Keras'
    ``CSVLogger`` writes; each row appended whole through :class:`tf2dasl.io.streams.LineFile`, which never writes
    through a symbolic link (one planted in its place stops training with a one-line error). ``append``: a
    resumed run adds its rows to the file; otherwise an earlier file of that name is replaced (the link itself,
    never what it points to)."""

    def __init__(self, path: Path, append: bool = False):
        super().__init__()
        self.path, self.append = Path(path), append
        self.keys: list[str] | None = None
        self.log: LineFile | None = None

    def on_train_begin(self, logs=None):
        if not self.append and os.path.lexists(self.path):
            os.unlink(self.path)
        self.log = LineFile(self.path)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.log.size() == 0:
                self.log.append(_csv_row(["epoch"] + self.keys))
        self.log.append(_csv_row([epoch] + [logs.get(k, "NA") for k in self.keys]))

    def on_train_end(self, logs=None):
        if self.log is not None:
            self.log.close()
