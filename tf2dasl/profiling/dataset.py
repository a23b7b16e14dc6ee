"""A profiled data set on disk: made once per teacher and settings, resumable, in 3DDFA's labelled layout.

Candidates (:func:`training_faces`) are the faces :mod:`tf2dasl.data.pipeline` trains on — the 300-W folders without
their hold-out and AFLW without its validation split — so a held-out face is never profiled. AFLW faces annotated
more than ``aflw_max_yaw`` from frontal, or with fewer than ``aflw_min_visible`` visible points, are not candidates.

:func:`make_profiled_set` runs three stages into a folder, each leaving complete files only
(:mod:`tf2dasl.io.outputs`):

1. **sources** (``sources.npz``): every candidate's teacher parameters for its crop and the crop's mirror image
   (through :class:`tf2dasl.data.teacher.TeacherCache`: training shares the labels), their flip average
   (:mod:`.fitting`), the selection (:mod:`.selection`) and, if asked, the kept 300-W fits refined to their manual
   points (:mod:`.refine`);
2. **views** (``shards/NNNNN/``): each shard of ``shard_sources`` kept faces is rendered by one of ``workers``
   processes (:mod:`.shards`: :mod:`.views`, poses from :mod:`.poses`) and put in place as a whole folder of JPEG
   crops and a ``shard.npz`` (``params (n, 62)`` raw, ``landmarks (n, 68, 2)`` crop pixels, ``pose (n, 3)``,
   ``source (n,)``, ``mirrored (n,)``); a rerun skips the shards already there;
3. **index**: ``list.txt`` (crop paths relative to the folder), ``params.npy (N, 62)`` raw, ``landmarks.npy
   (N, 68, 2)``, then ``profile.json`` (settings, counts, timings) last: its presence marks a complete set.

The folder's **key** hashes everything that decides the views: the generation settings
(:meth:`~.config.ProfiledDataConfig.generation`), the teacher (:func:`.teacher.teacher_fingerprint`), the crop
size and convention, and every candidate's image bytes and annotation. Sets live in ``<folder>/profiled-<key>``
unless a folder is given; a folder holding another key's set is refused, never mixed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from tqdm import tqdm

from ..data.data_config import WildDataConfig
from ..data.datasets import list_68, list_aflw
from ..data.sources import FaceSample
from ..data.teacher import TeacherCache, teacher_labels
from ..errors import UserError
from ..geometry.morphable_model import NUM_PARAMS
from ..geometry.pose import params_to_pose
from ..io.outputs import atomic_file, make_folder, write_json, write_text
from .config import ProfiledDataConfig
from .fitting import MeshFitter
from .refine import ALL_POINTS, INNER_POINTS, refine_to_points
from .selection import ModelPoints, SelectConfig, select_sources
from .shards import SHARD_FILE, SHARDS, init_worker, render_shard, shard_name
from .sheet import contact_sheet
from .sources import load_source
from .teacher import Teacher

SOURCES_FILE, INDEX_FILE, PARAMS_FILE, LANDMARKS_FILE, META_FILE = (
    "sources.npz", "list.txt", "params.npy", "landmarks.npy", "profile.json")
#: teacher crops labelled per call (and kept in memory at a time)
TEACHER_BATCH = 256
#: the thread-count variables of the BLAS and OpenMP libraries numpy and OpenCV may use
ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class ProfileError(UserError):
    """A profiled set that cannot be made or reused (one line naming the folder and the fix)."""


@dataclass(frozen=True)
class ProfiledSet:
    """A complete profiled set: its ``folder``, ``views`` and ``sources`` counts and ``meta`` (``profile.json``).
    ``list_file`` / ``params_file`` are what a 3D-labelled source (``data.labelled``) reads."""

    folder: Path
    views: int
    sources: int
    meta: dict

    @property
    def list_file(self) -> Path:
        return self.folder / INDEX_FILE

    @property
    def params_file(self) -> Path:
        return self.folder / PARAMS_FILE

    @property
    def landmarks_file(self) -> Path:
        return self.folder / LANDMARKS_FILE


# ---------------------------------------------------------------------------------------------- candidates, the key
def training_faces(wild: WildDataConfig, select: SelectConfig) -> list[FaceSample]:
    """The candidate source faces of a config's ``data.wild`` (paths expanded), 300-W's first, each in name order."""
    out: list[FaceSample] = []
    if wild.pts_folders or wild.lp_folders:
        out += list_68(wild)[0]
    if wild.aflw is not None:
        for s in list_aflw(wild.aflw)[0]:
            visible = int(np.isfinite(s.landmarks).all(axis=1).sum())
            if s.yaw is not None and abs(s.yaw) <= select.aflw_max_yaw and visible >= select.aflw_min_visible:
                out.append(s)
    return out


def set_key(cfg: ProfiledDataConfig, candidates: list[FaceSample], teacher_fp: str, size: int, convention: str,
            extra: dict | None = None) -> str:
    """24 hex digits: the generation settings, teacher, crop frame and every candidate's bytes and points."""
    h = hashlib.sha256(json.dumps({"generation": cfg.generation(), "teacher": teacher_fp, "size": size,
                                   "convention": convention, **(extra or {})}, sort_keys=True).encode())
    for face in candidates:
        h.update(face.landmark_set.encode())
        h.update(np.ascontiguousarray(face.landmarks, np.float32).tobytes())
        with open(face.image_path, "rb") as f:
            h.update(hashlib.sha1(f.read()).digest())
    return h.hexdigest()[:24]


def _owner_key(folder: Path) -> str | None:
    """The key of the set a folder holds (or is making), None for a new folder."""
    for name in (META_FILE, SOURCES_FILE):
        path = folder / name
        if path.is_file():
            if name == META_FILE:
                return json.loads(path.read_text()).get("key")
            with np.load(path, allow_pickle=False) as z:
                return str(z["key"])
    return None


# ---------------------------------------------------------------------------------------------- stage 1: sources
def _teacher_stage(cfg: ProfiledDataConfig, candidates: list[FaceSample], teacher: Teacher,
                   teacher_cache: str | None, aflw_points: np.ndarray | None, progress: bool, log) -> dict:
    """Teacher labels, flip averages and the selection of every candidate → the arrays of ``sources.npz``."""
    size, conv, mm = teacher.decoder.size, teacher.decoder.convention, teacher.decoder.mm
    cache = TeacherCache(teacher_cache, teacher.fingerprint) if teacher_cache else None
    fitter = MeshFitter(mm, size, conv)
    model_points = ModelPoints(mm, aflw_points, size, conv)
    params = np.zeros((len(candidates), NUM_PARAMS), np.float32)
    predicted, manual = {}, {}
    computed = 0
    with tqdm(total=len(candidates), desc="teacher on the candidates", unit="face", disable=not progress) as bar:
        for start in range(0, len(candidates), TEACHER_BATCH):
            batch = candidates[start:start + TEACHER_BATCH]
            images = [load_source(face, size) for face in batch]
            crops = np.stack([s.crop for s in images])
            labels, n = teacher_labels(crops, teacher.params, cache)
            computed += n
            avg = fitter.flip_average(labels[:, 0], labels[:, 1])
            params[start:start + len(batch)] = avg
            for i, (face, src) in enumerate(zip(batch, images)):
                k = (src.roi[2] - src.roi[0]) / size
                # work image → crop pixels, written out: image_to_crop rounds otherwise, and a refined fit would move
                manual[start + i] = (src.points + 0.5 - src.roi[:2]) / k - 0.5
                # one face per decode: a batched product rounds differently, and the NMEs stay those of earlier sets
                predicted[start + i] = model_points(avg[i:i + 1])[0, model_points.slots(face.landmark_set)]
            bar.update(len(batch))
    log(f"teacher labels: {computed} crops labelled, {len(candidates) - computed} from the cache")
    keep = np.zeros(len(candidates), bool)
    pose, nme, reasons = np.zeros((len(candidates), 3), np.float32), np.zeros(len(candidates)), {}
    for lset in sorted({c.landmark_set for c in candidates}):
        idx = np.array([i for i, c in enumerate(candidates) if c.landmark_set == lset])
        sel = select_sources(params[idx], np.stack([predicted[i] for i in idx]),
                             np.stack([manual[i] for i in idx]), cfg.select)
        keep[idx], pose[idx], nme[idx] = sel.keep, sel.pose, sel.nme
        if cfg.refine != "none" and lset == "68":
            for i in idx[sel.keep]:
                params[i] = refine_to_points(mm, params[i], manual[i], size, conv, cfg.refine_prior,
                                             shape=cfg.refine == "shape",
                                             used=ALL_POINTS if cfg.refine_jaw else INNER_POINTS)
            pose[idx] = params_to_pose(params[idx])
        reasons[lset] = {"candidates": int(len(idx)), "kept": int(sel.keep.sum()), **sel.reasons,
                         "nme_median": float(np.median(sel.nme))}
        log(f"sources ({lset}-point faces): {sel.keep.sum()} of {len(idx)} kept; not frontal "
            f"{sel.reasons['pose']}, points off by more than {cfg.select.max_nme} % {sel.reasons['points']}")
    return {"params": params, "pose": pose, "nme": nme, "keep": keep, "reasons": json.dumps(reasons)}


# ---------------------------------------------------------------------------------------------- the whole set
def make_profiled_set(cfg: ProfiledDataConfig, wild: WildDataConfig, teacher: Teacher,
                      out_dir: str | os.PathLike | None = None, *, aflw_points: np.ndarray | None = None,
                      teacher_cache: str | None = None, progress: bool = True,
                      log: Callable[[str], None] = print) -> ProfiledSet:
    """Make (or finish, or reuse) the profiled set of ``wild``'s training faces (paths expanded) in ``out_dir``,
    by default the cache folder ``<cfg.folder>/profiled-<key>`` (see the module doc).

    ``teacher``: its predictor labels the crops, its decoder's morphable model renders the views
    (:meth:`Teacher.from_model <tf2dasl.profiling.teacher.Teacher.from_model>` of a loaded model).
    ``aflw_points``: AFLW's 21 model points ``(21, 2)`` (``tf2dasl fit-landmarks``), needed when ``wild`` has AFLW.
    ``teacher_cache``: folder of the teacher-label cache (None: no cache)."""
    t0 = time.time()
    size, conv = teacher.decoder.size, teacher.decoder.convention
    candidates = training_faces(wild, cfg.select)
    if not candidates:
        raise ProfileError("no training face to profile: data.wild names no 300-W folder or AFLW crops (or none is "
                           f"within data.profiled.select.aflw_max_yaw = {cfg.select.aflw_max_yaw})")
    if any(c.landmark_set == "aflw21" for c in candidates) and aflw_points is None:
        raise ProfileError("AFLW faces need their fitted model points (data.wild.aflw.points_file)")
    extra = {"aflw_points": None if aflw_points is None else np.asarray(aflw_points).tolist()}
    key = set_key(cfg, candidates, teacher.fingerprint, size, conv.name, extra)
    out = Path(cfg.folder) / f"profiled-{key}" if out_dir is None else Path(out_dir)
    owner = _owner_key(out) if out.is_dir() else None
    if owner is not None and owner != key:
        raise ProfileError(f"{out} holds profiled faces made from other faces, settings or teacher (key {owner}, "
                           f"now {key}); choose another --out or delete it")
    if (out / META_FILE).is_file():
        meta = json.loads((out / META_FILE).read_text())
        log(f"profiled faces: {meta['views']} views of {meta['sources']} faces in {out} (made before, reused)")
        return ProfiledSet(out, meta["views"], meta["sources"], meta)
    make_folder(out)
    if (out / SOURCES_FILE).is_file():
        with np.load(out / SOURCES_FILE, allow_pickle=False) as z:
            stage = {k: z[k] for k in z.files}
        stage["reasons"] = str(stage["reasons"])
        log(f"sources: {int(stage['keep'].sum())} kept of {len(candidates)} candidates (from {out / SOURCES_FILE})")
    else:
        stage = _teacher_stage(cfg, candidates, teacher, teacher_cache, aflw_points, progress, log)
        with atomic_file(out / SOURCES_FILE) as f:
            np.savez(f, key=np.array(key), **stage)
    t1 = time.time()
    kept = np.flatnonzero(stage["keep"])
    if not len(kept):
        raise ProfileError(f"none of the {len(candidates)} candidate faces passed the selection (see the lines "
                           "above); relax data.profiled.select (max_yaw, max_pitch, max_nme)")
    items = [(int(i), candidates[i], stage["params"][i], stage["pose"][i]) for i in kept]
    shards = [items[s:s + cfg.shard_sources] for s in range(0, len(items), cfg.shard_sources)]
    todo = [s for s in range(len(shards)) if not (out / SHARDS / shard_name(s) / SHARD_FILE).is_file()]
    made = _render(cfg, shards, todo, out, teacher, progress, log)
    t2 = time.time()
    meta = _write_index(out, len(shards), key, cfg, stage, len(candidates), len(kept), size,
                        {"teacher_stage": t1 - t0, "views": t2 - t1, "views_made_now": made})
    log(f"profiled faces: {meta['views']} views of {meta['sources']} faces in {out} "
        f"({made} views made in {t2 - t1:.0f} s, {cfg.workers} worker(s))")
    return ProfiledSet(out, meta["views"], meta["sources"], meta)


@contextlib.contextmanager
def _one_thread_each():
    """Worker processes started inside run their BLAS and OpenMP on one thread each (they read the environment as
    they start): the processes are the parallelism, and two-thread BLAS calls on tiny matrices only contend."""
    saved = {k: os.environ.get(k) for k in ONE_THREAD}
    os.environ.update({k: "1" for k in ONE_THREAD})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _render(cfg: ProfiledDataConfig, shards: list, todo: list[int], out: Path, teacher: Teacher, progress: bool,
            log) -> int:
    """Render the shards ``todo`` with ``cfg.workers`` processes (:mod:`.shards`); returns the views made."""
    if not todo:
        return 0
    tasks = [(str(out), s, shards[s], cfg.poses, cfg.seed, cfg.quality) for s in todo]
    total = sum(len(shards[s]) for s in todo) * cfg.poses.views
    init = (teacher.decoder.mm, teacher.decoder.size, teacher.decoder.convention, cfg.surround)
    made = 0
    with tqdm(total=total, desc="profiled views", unit="view", disable=not progress) as bar:
        if cfg.workers == 1:
            init_worker(*init)
            results = map(render_shard, tasks)
            for _, n in results:
                made += n
                bar.update(n)
        else:
            ctx = multiprocessing.get_context("spawn")        # no fork of a process running TensorFlow
            with _one_thread_each(), ctx.Pool(cfg.workers, initializer=init_worker, initargs=init) as pool:
                for _, n in pool.imap_unordered(render_shard, tasks):
                    made += n
                    bar.update(n)
    return made


def _write_index(out: Path, n_shards: int, key: str, cfg: ProfiledDataConfig, stage: dict, candidates: int,
                 kept: int, size: int, seconds: dict) -> dict:
    """``list.txt``, ``params.npy``, ``landmarks.npy`` over all shards, then ``profile.json`` (the set's marker)."""
    names, params, landmarks, pose = [], [], [], []
    for s in range(n_shards):
        with np.load(out / SHARDS / shard_name(s) / SHARD_FILE, allow_pickle=False) as z:
            names += [f"{SHARDS}/{shard_name(s)}/{n}" for n in z["names"].tolist()]
            params.append(z["params"])
            landmarks.append(z["landmarks"])
            pose.append(z["pose"])
    params, landmarks, pose = np.concatenate(params), np.concatenate(landmarks), np.concatenate(pose)
    write_text(out / INDEX_FILE, "".join(f"{n}\n" for n in names))
    for name, array in ((PARAMS_FILE, params), (LANDMARKS_FILE, landmarks)):
        with atomic_file(out / name) as f:
            np.save(f, array)
    yaw = np.abs(pose[:, 0])
    meta = {"key": key, "views": len(names), "sources": kept, "candidates": candidates, "size": size,
            "selection": json.loads(stage["reasons"]), "yaw_bins": {
                "0-30": int((yaw <= 30).sum()), "30-60": int(((yaw > 30) & (yaw <= 60)).sum()),
                "60-90": int((yaw > 60).sum())},
            "settings": cfg.generation(), "seconds": seconds}
    write_json(out / META_FILE, meta, indent=1)
    return meta


def set_sheet(made: ProfiledSet, wild: WildDataConfig, cfg: ProfiledDataConfig, rows: int = 8) -> np.ndarray:
    """A contact sheet (:func:`.sheet.contact_sheet`) of ``rows`` source faces of a set, evenly spread over its
    sources: each face's crop, then its views by yaw with their labels' landmarks."""
    with np.load(made.folder / SOURCES_FILE, allow_pickle=False) as z:
        kept = np.flatnonzero(z["keep"])
    chosen = set(kept[np.linspace(0, len(kept) - 1, min(rows, len(kept))).round().astype(int)].tolist())
    candidates = training_faces(wild, cfg.select)
    found: dict[int, list] = {i: [] for i in chosen}
    for shard in sorted((made.folder / SHARDS).iterdir()):
        with np.load(shard / SHARD_FILE, allow_pickle=False) as z:
            for name, src, lm, pose in zip(z["names"].tolist(), z["source"], z["landmarks"], z["pose"]):
                if int(src) in found:
                    found[int(src)].append((cv2.imread(str(shard / name)), lm, float(pose[0])))
    order = sorted(found)
    size = made.meta.get("size") or found[order[0]][0][0].shape[0]
    return contact_sheet([load_source(candidates[i], size).crop for i in order],
                         [[v[0] for v in found[i]] for i in order], [[v[1] for v in found[i]] for i in order],
                         [[v[2] for v in found[i]] for i in order])
