"""The profiled faces of a training config (``data.profiled``, :mod:`tf2dasl.profiling`): made from the config's own
in-the-wild training faces by a teacher model before training — or reused from their cache — and the 3D-labelled
stream they feed. ``tf2dasl train`` and ``tf2dasl profile`` both make them here, so both find the same set.
"""
from __future__ import annotations

import os

from ..data.data_config import LabelledDataConfig
from ..data.landmark_sets import read_points_file
from ..io.model_dir import load_model_dir
from ..models.task import FaceTask
from ..profiling.config import ProfiledDataConfig
from ..profiling.dataset import ProfiledSet, make_profiled_set
from ..profiling.teacher import Teacher
from .train_config import TrainConfig, expand_path


def make_config_profiled_set(cfg: TrainConfig, teacher: FaceTask, prof: ProfiledDataConfig | None = None,
                             out_dir: str | os.PathLike | None = None) -> ProfiledSet:
    """The profiled set of ``cfg``'s wild training faces (paths expanded:
    :func:`~tf2dasl.training.train_config.expand_data_paths`) with the settings ``prof`` (default:
    ``cfg.data.profiled``), made by the loaded model ``teacher`` — or reused — in ``out_dir`` (default: the cache
    folder ``data.profiled.folder/profiled-<key>``). AFLW faces are compared through the config's fitted points
    (``data.wild.aflw.points_file``); the teacher's labels are shared with training through ``data.teacher_cache``."""
    aflw = cfg.data.wild.aflw
    return make_profiled_set(prof or cfg.data.profiled, cfg.data.wild, Teacher.from_model(teacher), out_dir,
                             aflw_points=read_points_file(aflw.points_file, "aflw21") if aflw is not None else None,
                             teacher_cache=expand_path(cfg.data.teacher_cache))


def labelled_data(cfg: TrainConfig, init: str | None, teacher: FaceTask | None) -> LabelledDataConfig | None:
    """The 3D-labelled stream of a run: ``data.labelled``, or ``data.profiled``'s views of the wild training faces —
    made by the ``--init`` model (``teacher``: its frozen copy or the model as the trainer loaded it; read from
    ``init`` when None) before training, or reused from their cache."""
    prof = cfg.data.profiled
    if prof is None:
        return cfg.data.labelled
    made = make_config_profiled_set(cfg, teacher if teacher is not None else load_model_dir(init))
    return LabelledDataConfig(root=str(made.folder), list_file=str(made.list_file), params_file=str(made.params_file),
                              **prof.feed())
