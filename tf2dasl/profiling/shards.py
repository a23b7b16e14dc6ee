"""One shard of a profiled set, rendered by a worker process: its source faces' views as JPEG crops and a
``shard.npz`` in a folder put in place whole (:mod:`tf2dasl.profiling.dataset` plans the shards and runs the workers).

What a worker imports: numpy, OpenCV, SciPy and the numpy modules of profiling (:mod:`.views`, :mod:`.poses`,
:mod:`.sources`, :mod:`.fitting`) — never TensorFlow, so each spawned process starts quickly and small.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..geometry.conventions import CropConvention
from ..geometry.morphable_model import MorphableModel
from ..io.outputs import atomic_dir, atomic_file, encode_image, write_bytes
from .fitting import MeshFitter
from .poses import plan_views
from .sources import load_source
from .surroundings import SurroundConfig
from .views import Profiler, Source

#: the folder of the shards inside a set
SHARDS = "shards"
#: a shard's arrays, inside its folder
SHARD_FILE = "shard.npz"

_WORKER: dict = {}


def init_worker(mm: MorphableModel, size: int, convention: CropConvention, surround: SurroundConfig) -> None:
    """Per process, once: the profiler and the mirror fitter (OpenCV on one thread: the processes are the
    parallelism)."""
    cv2.setNumThreads(1)
    _WORKER.update(profiler=Profiler(mm, size, convention, surround), fitter=MeshFitter(mm, size, convention))


def shard_name(index: int) -> str:
    return f"{index:05d}"


def render_shard(task: tuple) -> tuple[int, int]:
    """Make one shard's folder (a worker's job, after :func:`init_worker`): ``task = (folder, shard index,
    [(source index, FaceSample, params (62,), pose (3,)), ...], PoseConfig, seed, JPEG quality)`` → ``(shard index,
    views made)``."""
    folder, shard, items, poses, seed, quality = task
    profiler, fitter = _WORKER["profiler"], _WORKER["fitter"]
    size = profiler.size
    names, params, landmarks, pose, source, mirrored = [], [], [], [], [], []
    with atomic_dir(Path(folder) / SHARDS / shard_name(shard)) as tmp:
        for index, face, p, fit_pose in items:
            src = load_source(face, size)
            plans = plan_views(fit_pose, poses, seed, index)
            prepared = {}
            for k, plan in enumerate(plans):
                if plan.mirrored not in prepared:
                    if plan.mirrored:
                        w = src.work.shape[1]
                        x0, y0, x1, y1 = src.roi
                        s = Source(face.image_path, np.ascontiguousarray(src.work[:, ::-1]),
                                   np.array([w - x1, y0, w - x0, y1]), fitter.mirror(p[None])[0])
                    else:
                        s = Source(face.image_path, src.work, src.roi, p)
                    prepared[plan.mirrored] = profiler.prepare(s)
                view = profiler.view(prepared[plan.mirrored], plan.pose)
                name = f"s{index:06d}_v{k}.jpg"
                write_bytes(tmp / name, encode_image(name, view.image, (cv2.IMWRITE_JPEG_QUALITY, quality)),
                            fsync=False)
                names.append(name)
                params.append(view.params)
                landmarks.append(view.landmarks)
                pose.append((plan.pose.yaw, plan.pose.pitch, plan.pose.roll))
                source.append(index)
                mirrored.append(plan.mirrored)
        with atomic_file(tmp / SHARD_FILE, fsync=False) as f:
            np.savez(f, names=np.array(names), params=np.array(params, np.float32),
                     landmarks=np.array(landmarks, np.float32), pose=np.array(pose, np.float32),
                     source=np.array(source, np.int64), mirrored=np.array(mirrored))
    return shard, len(names)
