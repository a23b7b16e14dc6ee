"""Model directories: a :class:`~tf2dasl.models.task.FaceTask` on disk, self-describing, written and read by one
pair of functions (:func:`save_model_dir`, :func:`load_model_dir`).

Layout (format version 2)::

    MODEL_DIR/
      model.json               {"format": "tf2dasl-model", "format_version": 2, "tf2dasl_version", "created",
                                "task": {"class_name": "tf2dasl>FaceTask", "config": FaceTask.get_config()},
                                "provenance": {...}, "files": {...}}
      regressor.weights.h5     Keras weights of the task's regressor
      morphable_model.npz      bases, triangles, landmark indices, the parameter whitening and (optional) the
                               vertices' UV texture coordinates ``uv`` (N, 2)

``task.config`` is the one description of the model (its :class:`~tf2dasl.models.spec.ModelSpec` and the morphable
layer's shape); ``provenance`` says where it came from. Version 1 directories (a flat ``spec`` that also held the
provenance) still load. Reading and checking the files without building the network: :mod:`.model_files`.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..models.task import FaceTask
from .model_files import (FORMAT, FORMAT_VERSION, MM_FILE, REMAKE_HINT, SPEC_FILE, TASK_CLASS, WEIGHTS_FILE,
                          ModelDirError, read_model_meta, read_morphable, task_config)
from .json_text import parse_json
from .outputs import OutputError, atomic_dir, write_json


def save_model_dir(task: FaceTask, out_dir: str | Path) -> Path:
    """Write ``task`` to ``out_dir``, built under a temporary name and renamed when complete
    (:func:`tf2dasl.io.outputs.atomic_dir`): a crash or a full disk never leaves a half-written model directory.

    An existing ``out_dir`` is replaced only when it is empty or a tf2dasl model directory; any other folder or
    file there is an :class:`~tf2dasl.io.outputs.OutputError` and is left untouched."""
    out = Path(out_dir)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "tf2dasl_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "task": {"class_name": TASK_CLASS, "config": task.get_config()},
            "provenance": {**task.provenance, "morphable_model": task.mm.source},
            "files": {"weights": WEIGHTS_FILE, "morphable_model": MM_FILE}}
    with atomic_dir(out, replace=_replaceable(out)) as tmp:
        np.savez(tmp / MM_FILE, **task.mm.arrays())
        task.regressor.save_weights(str(tmp / WEIGHTS_FILE))
        write_json(tmp / SPEC_FILE, meta, indent=2, fsync=False)  # atomic_dir syncs the whole folder
    return out


def _replaceable(out: Path) -> bool:
    """Whether :func:`save_model_dir` may replace ``out``: absent, an empty folder or a model directory."""
    if not out.exists() and not out.is_symlink():
        return False
    if out.is_dir() and not out.is_symlink():
        if not any(out.iterdir()):
            return True
        try:
            if parse_json((out / SPEC_FILE).read_bytes()).get("format") == FORMAT:
                return True
        except (OSError, ValueError, AttributeError):
            pass
    raise OutputError(out, "it exists and is not a tf2dasl model directory; choose another folder or remove it")


def load_model_dir(model_dir: str | Path) -> FaceTask:
    """Load a model directory into a :class:`FaceTask` (its morphable model, weights and provenance)."""
    d = Path(model_dir)
    meta = read_model_meta(d)
    config, provenance = task_config(meta, d / SPEC_FILE)
    mm = read_morphable(d, provenance)
    try:
        task = FaceTask(config["spec"], mm, dense=bool(config.get("dense")), num_vertices=config.get("num_vertices"),
                        provenance={k: v for k, v in provenance.items() if k != "morphable_model"})
    except (TypeError, ValueError) as exc:
        raise ModelDirError(f"{d / SPEC_FILE}: cannot build the model it describes ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); {REMAKE_HINT}") from None
    try:
        task.regressor.load_weights(str(d / WEIGHTS_FILE))
    except Exception as exc:
        raise ModelDirError(f"{d / WEIGHTS_FILE}: cannot load weights into {task.spec.backbone} "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return task
