"""tf.data input pipelines for 2DASL training: in-the-wild faces (2D landmarks), 3D-labelled crops, both mixed.

Elements (``S`` = ``AugmentConfig.size``, crops BGR uint8, landmarks 0-based crop pixels, y down):

* :func:`wild_dataset`: ``{"image": (B, S, S, 3) uint8, "landmarks": (B, 68, 2) float32,
  "map": (B, S, S) float32}`` — ``map`` is 2DASL's landmark map of the given landmarks (-1, +1 at the 18
  map points; equal to :func:`tf2dasl.geometry.landmark_map.tf_landmark_map` of ``landmarks``).
* :func:`labelled_dataset`: ``{"image": (B, S, S, 3) uint8, "params": (B, 62) float32}`` raw 3DDFA params;
  colour jitter only (a geometric change or mirror would invalidate the params; no param flip is done).
* :func:`mixed_dataset`: ``{"labelled": {...}, "wild": {...}}``, e.g. 8 + 8 faces per step as 2DASL.

Reproducibility: epoch ``e`` visits the samples in ``stateless_shuffle(range(N), seed=f(seed, e))`` order
and sample ``i`` gets row ``i`` of ``stateless_uniform((N, K), seed=f(seed, e))`` as its random numbers, so
every batch is a pure function of (seed, epoch, sample indices). Each epoch holds ``steps_per_epoch``
whole batches (the remainder of the permutation is dropped), so ``start_epoch=k`` / ``start_step=g``
yield exactly what an uninterrupted iterator yields from epoch ``k`` / batch ``g`` on (``--resume``).
Parallel maps run with ``deterministic=True`` and every op is deterministic on CPU, so a resumed run
matches bit for bit on the same machine and TensorFlow build.

Loading: images are decoded once up front (``tf.io.decode_image``, parallel), which also finds unreadable
files: they are **skipped and counted** (:class:`LoadStats`, one warning line naming them). With
``cache="memory"`` each in-the-wild face is kept as a ``cache_size``-pixel square around its roi
(``cache_margin`` roi sides) and each batch is cut from that stack in one XLA-compiled function
(:func:`~tf2dasl.data.augment.augment_stack`: gather-based bilinear warp, colour matrix, landmark map);
``cache="none"`` decodes the file at every visit (data sets larger than memory; per-face
``ImageProjectiveTransformV3`` warp); ``"auto"`` picks memory under ``cache_limit_mb``. Set
``pipeline.JIT = False`` to run the same maths as plain TF ops.

AFLW2000-3D validation needs no dataset: the lead's callback calls
``tf2dasl.evaluate.evaluate_aflw2000(load_aflw2000(DIR), landmarks_fn)`` (protocol crops are already an
``(N, 120, 120, 3)`` array, 200 faces in the dev slice).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from ..geometry.landmark_map import BACKGROUND, FOREGROUND, tf_map_pixels
from ..geometry.roi import ROI_LANDMARK_SCALE, roi_center_side
from .augment import (AugmentConfig, augment_stack, colour_jitter, random_numbers, sample_geometry, to_uint8,
                      warp_images)
from .sources import (FaceSample, ParamSample, list_300wlp, list_3ddfa_params, list_pts_faces, split_holdout)

log = logging.getLogger(__name__)

CACHE_MODES = ("auto", "memory", "none")
#: XLA-compile the batched augmentation (gathers + colour fused: ~3x faster on CPU than plain TF ops).
JIT = True
#: stream tags: keep the wild and labelled streams' randomness apart when they share a seed.
WILD_TAG, LABELLED_TAG = 1, 2


class DataError(UserError):
    """A data set that cannot feed training (empty, smaller than a batch, bad option)."""


# ---------------------------------------------------------------------------- configs
@dataclass
class WildDataConfig:
    """In-the-wild faces (2D landmarks only). pts_folders: 300-W style folders; lp_folders: 300W-LP
    ``.mat`` folders; holdout_every/offset: hold out every n-th face (sorted by name) for validation
    (0 = none); cache: auto | memory | none (see module doc)."""

    pts_folders: list[str] = field(default_factory=list)
    lp_folders: list[str] = field(default_factory=list)
    holdout_every: int = 0
    holdout_offset: int = 0
    #: folders (of ``pts_folders``) the hold-out is taken from; empty: from all faces together
    holdout_from: list[str] = field(default_factory=list)
    batch_size: int = 8
    cache: str = "auto"
    cache_size: int = 256
    cache_margin: float = 2.0
    cache_limit_mb: int = 2048
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        _check_common(self.cache, self.batch_size)
        if self.cache_size < 16 or self.cache_margin <= 0:
            raise ValueError("cache_size must be >= 16 and cache_margin positive")
        if self.holdout_every > 0 and not 0 <= self.holdout_offset < self.holdout_every:
            raise ValueError(f"holdout_offset must be in [0, {self.holdout_every})")


@dataclass
class LabelledDataConfig:
    """3D-labelled crops in 3DDFA's layout: ``root`` + ``list_file`` of crop names, ``params_file`` (N, 62);
    ``params_whitened``: the file holds whitened params (3DDFA v1's ``param_all_norm.pkl``: true) to be
    un-whitened with ``whitening_file`` (3DDFA v1: ``train.configs/param_whitening.pkl``)."""

    root: str = ""
    list_file: str = ""
    params_file: str = ""
    params_whitened: bool = False
    whitening_file: str = ""
    batch_size: int = 8
    cache: str = "auto"
    cache_limit_mb: int = 2048
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        _check_common(self.cache, self.batch_size)
        if self.params_whitened and not self.whitening_file:
            raise ValueError("params_whitened needs whitening_file (3DDFA v1: train.configs/param_whitening.pkl)")


def _validate(cfg: AugmentConfig) -> None:
    try:
        cfg.validate()
    except ValueError as exc:
        raise DataError(f"augmentation config: {exc}") from None


def _check_common(cache: str, batch_size: int) -> None:
    """What both data configs check: the cache mode and a positive batch size."""
    _check_cache(cache)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")


def _check_cache(mode: str) -> None:
    if mode not in CACHE_MODES:
        raise ValueError(f"cache must be one of {', '.join(CACHE_MODES)}, got {mode!r}")


# ---------------------------------------------------------------------------- loading
@dataclass
class LoadStats:
    """What loading found: ``total`` samples listed, ``used``, and the ``skipped`` unreadable image paths."""

    total: int
    used: int
    skipped: list[str]

    def summary(self, what: str = "images") -> str:
        line = f"{what}: {self.total} listed, {self.used} used, {len(self.skipped)} skipped"
        if self.skipped:
            more = len(self.skipped) - 10
            shown = ", ".join(self.skipped[:10]) + (f" (+{more} more)" if more > 0 else "")
            line += f" (unreadable: {shown})"
        return line


@dataclass(eq=False)
class WildFaces:
    """Loaded in-the-wild faces. ``landmarks (N, 68, 2)`` and ``pixel_scale (N,)`` are in the *source* frame:
    the cached square (``images (N, P, P, 3)`` uint8, ``mode == "memory"``) or the original image
    (``images is None``, ``mode == "none"``, ``pixel_scale`` 1)."""

    samples: list[FaceSample]
    landmarks: np.ndarray
    pixel_scale: np.ndarray
    images: object | None
    mode: str
    stats: LoadStats
    roi_scale: float
    margin: float

    def __len__(self) -> int:
        return len(self.samples)


@dataclass(eq=False)
class LabelledCrops:
    """Loaded 3D-labelled crops: ``params (N, 62)`` raw; ``images (N, S, S, 3)`` uint8 when cached in memory."""

    samples: list[ParamSample]
    params: np.ndarray
    images: object | None
    mode: str
    stats: LoadStats
    size: int

    def __len__(self) -> int:
        return len(self.samples)


def decode_bgr(path):
    """TF: the image file at ``path`` (scalar string) → ``(H, W, 3)`` uint8 **BGR** (stored pixel order;
    EXIF orientation is not applied, as the landmarks of 300-W-style sets refer to the stored pixels)."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False, dtype=tf.uint8)
    return tf.reverse(image, axis=[-1])


def _plain(fn):
    """Skip AutoGraph for a tf.data function (no tensor-dependent Python control flow here; faster tracing)."""
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(fn)


def _options():
    import tensorflow as tf

    opts = tf.data.Options()
    opts.deterministic = True
    return opts


def _resolve_cache(mode: str, nbytes: int, limit_mb: int) -> str:
    _check_cache(mode)
    if mode == "auto":
        return "memory" if nbytes <= limit_mb * 2 ** 20 else "none"
    return mode


def _decode_all(paths: list[str], fn, out_shape, dtype):
    """Run ``fn(path) -> array`` over all paths in parallel; returns ``(ok_indices, stacked arrays)``,
    unreadable files (any decoding error) left out."""
    import tensorflow as tf

    n = len(paths)
    ds = tf.data.Dataset.from_tensor_slices((tf.range(n, dtype=tf.int32), tf.constant(paths, tf.string)))
    ds = ds.map(_plain(lambda i, p: (i, fn(i, p))), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors().batch(64).prefetch(2).with_options(_options())
    out = np.empty((n,) + tuple(out_shape), dtype) if out_shape is not None else None
    ok = []
    for idx, arr in ds:
        idx = idx.numpy()
        if out is not None:
            out[len(ok):len(ok) + len(idx)] = arr.numpy()
        ok.extend(idx.tolist())
    ok = np.asarray(ok, np.int64)
    return ok, (out[:len(ok)] if out is not None else None)


def _report(stats: LoadStats, what: str) -> None:
    if stats.skipped:
        log.warning(stats.summary(what))


def load_wild_faces(samples: Sequence[FaceSample], cache: str = "auto", cache_size: int = 256,
                    cache_margin: float = 2.0, roi_scale: float = ROI_LANDMARK_SCALE,
                    cache_limit_mb: int = 2048) -> WildFaces:
    """Decode every face once (parallel), skipping unreadable images, and cache them per ``cache``.

    ``memory``: each face becomes a ``cache_size x cache_size`` uint8 square of ``cache_margin`` roi sides
    around its roi (bilinear, zero fill; about ``3 * cache_size**2`` bytes a face: 240 MB for the 1,207
    300-W faces at 256), its landmarks mapped into it. ``none``: only validated; decoded at every visit.
    """
    import tensorflow as tf

    samples = list(samples)
    if not samples:
        raise DataError("no in-the-wild faces to load")
    mode = _resolve_cache(cache, len(samples) * cache_size * cache_size * 3, cache_limit_mb)
    paths = [s.image_path for s in samples]
    lms = np.stack([np.asarray(s.landmarks, np.float32).reshape(68, 2) for s in samples])
    centre, extent = roi_center_side(lms, 1.0)  # the landmarks' square box (pixel_scale 1); the roi is roi_scale x
    bad = np.flatnonzero(~(np.isfinite(extent) & (extent >= 2.0)))
    if len(bad):
        raise DataError(f"{paths[bad[0]]}: degenerate landmarks (box of {extent[bad[0]]:.1f} px); "
                        f"{len(bad)} such face(s) in all")
    if mode == "memory":
        side = roi_scale * extent
        kb = (cache_margin * side / cache_size).astype(np.float32)              # original px per cached px
        q0 = (centre - cache_margin * side[:, None] / 2).astype(np.float32)
        t = q0 + 0.5 * kb[:, None] - 0.5      # cached pixel j samples the original at q0 + kb (j + 0.5) - 0.5
        transforms = np.zeros((len(samples), 8), np.float32)
        transforms[:, 0], transforms[:, 2], transforms[:, 4], transforms[:, 5] = kb, t[:, 0], kb, t[:, 1]
        tr_t = tf.constant(transforms)

        def fn(i, p):
            img = decode_bgr(p)
            return to_uint8(warp_images(img[None], tr_t[i][None], cache_size))[0]

        ok, images = _decode_all(paths, fn, (cache_size, cache_size, 3), np.uint8)
        src_lm = ((lms - t[:, None, :]) / kb[:, None, None]).astype(np.float32)[ok]
        pixel_scale = kb[ok]
        images = tf.constant(images)
    else:
        ok, _ = _decode_all(paths, lambda i, p: tf.shape(decode_bgr(p)), None, None)
        src_lm, pixel_scale, images = lms[ok], np.ones(len(ok), np.float32), None
    stats = LoadStats(len(samples), len(ok), [paths[i] for i in sorted(set(range(len(samples))) - set(ok.tolist()))])
    _report(stats, "in-the-wild faces")
    if not len(ok):
        raise DataError(f"none of the {len(samples)} in-the-wild images could be read (first: {paths[0]})")
    return WildFaces([samples[i] for i in ok], src_lm, pixel_scale, images, mode, stats, roi_scale, cache_margin)


def load_labelled_crops(samples: Sequence[ParamSample], size: int = 120, cache: str = "auto",
                        cache_limit_mb: int = 2048) -> LabelledCrops:
    """Decode every crop once (parallel; resized to ``size`` if needed), skipping unreadable ones; keep them
    in memory per ``cache`` (3DDFA's 636k crops are 27 GB: ``auto`` streams those from the files)."""
    import tensorflow as tf

    samples = list(samples)
    if not samples:
        raise DataError("no 3D-labelled crops to load")
    mode = _resolve_cache(cache, len(samples) * size * size * 3, cache_limit_mb)
    paths = [s.image_path for s in samples]
    if mode == "memory":
        ok, images = _decode_all(paths, lambda i, p: _decode_crop(p, size), (size, size, 3), np.uint8)
        images = tf.constant(images)
    else:
        ok, _ = _decode_all(paths, lambda i, p: tf.shape(decode_bgr(p)), None, None)
        images = None
    stats = LoadStats(len(samples), len(ok), [paths[i] for i in sorted(set(range(len(samples))) - set(ok.tolist()))])
    _report(stats, "3D-labelled crops")
    if not len(ok):
        raise DataError(f"none of the {len(samples)} labelled crops could be read (first: {paths[0]})")
    params = np.stack([np.asarray(samples[i].params, np.float32) for i in ok])
    return LabelledCrops([samples[i] for i in ok], params, images, mode, stats, size)


def _decode_crop(path, size: int):
    """A crop file → ``(size, size, 3)`` uint8 BGR (bilinear resize when it is not ``size`` already)."""
    import tensorflow as tf

    img = decode_bgr(path)
    same = tf.logical_and(tf.shape(img)[0] == size, tf.shape(img)[1] == size)
    return tf.cond(same, lambda: tf.ensure_shape(img, (size, size, 3)),
                   lambda: to_uint8(tf.image.resize(img, (size, size), method="bilinear")))


# ---------------------------------------------------------------------------- streams
def steps_per_epoch(n: int, batch_size: int) -> int:
    """Whole batches in an epoch of ``n`` samples (the remainder is dropped)."""
    return n // batch_size


def landmark_map_batch(landmarks, size: int = 120):
    """2DASL landmark maps ``(B, size, size)`` float32 of crop-pixel landmarks ``(B, 68, 2)`` (scatter-based;
    same values as :func:`~tf2dasl.geometry.landmark_map.tf_landmark_map`, without its one-hot)."""
    import tensorflow as tf

    pts = tf_map_pixels(landmarks)                                               # (B, 18, 2)
    b = tf.shape(pts)[0]
    x, y = pts[..., 0], pts[..., 1]
    ok = (x >= 0) & (x < size) & (y >= 0) & (y < size)
    cells = b * size * size
    flat = tf.where(ok, (tf.range(b)[:, None] * size + y) * size + x, cells)
    hit = tf.math.unsorted_segment_max(tf.ones_like(flat, tf.float32), flat, cells + 1)[:cells]
    return tf.reshape(tf.where(hit > 0, FOREGROUND, BACKGROUND), (b, size, size))


@functools.lru_cache(maxsize=32)
def _compiled_cached(kind: str, cfg_fields: tuple, augment: bool, jit: bool):
    import tensorflow as tf

    cfg = AugmentConfig(*cfg_fields)

    def finish(crops, labels):
        return {"image": crops, "landmarks": labels, "map": landmark_map_batch(labels, cfg.size)}

    if kind == "wild_stack":      # (stack, idx, landmarks, pixel_scale, rand) → wild batch
        def fn(stack, idx, lm, ps, rand):
            return finish(*augment_stack(stack, idx, lm, rand, cfg, augment, ps))
    elif kind == "wild_crops":    # (float crops, labels, rand) → wild batch
        def fn(crops, labels, rand):
            return finish(colour_jitter(crops, rand, cfg) if augment else to_uint8(crops), labels)
    else:                         # (uint8 images, rand) → jittered uint8 images
        def fn(images, rand):
            return colour_jitter(images, rand, cfg)
    return tf.function(fn, jit_compile=jit, autograph=False)


def _compiled(kind: str, cfg: AugmentConfig, augment: bool):
    """The batched augmentation, XLA-compiled once per (kind, config, augment) and input shapes."""
    return _compiled_cached(kind, dataclasses.astuple(cfg), augment, bool(JIT))


def _index_stream(n: int, batch_size: int, seed: int, tag: int, start_epoch: int, start_step: int,
                  shuffle: bool, epochs: int | None, drop_remainder: bool):
    """Elements ``(index int32, rand (K,) float32)``, epoch after epoch, each epoch a whole number of batches."""
    import tensorflow as tf

    if batch_size < 1:
        raise DataError(f"batch size must be positive, got {batch_size}")
    if drop_remainder:
        spe = steps_per_epoch(n, batch_size)
        if spe == 0:
            raise DataError(f"the data set holds {n} samples, fewer than one batch of {batch_size}")
    else:
        if epochs is None:
            raise DataError("drop_remainder=False needs a finite number of epochs (a partial batch would "
                            "straddle two epochs)")
        spe = -(-n // batch_size)
    usable = spe * batch_size if drop_remainder else n
    first = start_epoch + start_step // spe
    skip = (start_step % spe) * batch_size

    def epoch_slices(e):
        key = tf.stack([tf.constant(seed, tf.int64), e])
        if shuffle:
            shuffle_key = tf.random.experimental.stateless_fold_in(key, tf.constant(tag, tf.int64))
            perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=shuffle_key)
        else:
            perm = tf.range(n, dtype=tf.int32)
        perm = perm[:usable]
        return tf.data.Dataset.from_tensor_slices((perm, tf.gather(random_numbers(key, n, tag), perm)))

    counter = (tf.data.Dataset.counter(first) if epochs is None
               else tf.data.Dataset.range(first, start_epoch + epochs))
    return counter.flat_map(_plain(epoch_slices)).skip(skip)


def wild_dataset(faces: WildFaces | Sequence[FaceSample], cfg: AugmentConfig | None = None, batch_size: int = 8,
                 seed: int = 0, start_epoch: int = 0, shuffle: bool = True, augment: bool = True, *,
                 start_step: int = 0, epochs: int | None = None, drop_remainder: bool = True):
    """Batches of in-the-wild faces: ``{"image": (B, S, S, 3) uint8, "landmarks": (B, 68, 2) float32 crop px,
    "map": (B, S, S) float32}``.

    ``faces``: :func:`load_wild_faces`'s result, or samples (loaded with the defaults). Infinite unless
    ``epochs`` is given; ``start_epoch``/``start_step`` resume (``start_step`` batches after the start of
    ``start_epoch``). Validation: ``shuffle=False, augment=False, epochs=1, drop_remainder=False``.
    """
    import tensorflow as tf

    cfg = cfg or AugmentConfig()
    _validate(cfg)
    if not isinstance(faces, WildFaces):
        faces = load_wild_faces(faces, roi_scale=cfg.roi_scale)
    if faces.mode == "memory":
        need = cfg.window_extent() * cfg.roi_scale
        if augment and faces.margin * faces.roi_scale / 2 < need - 1e-6:
            log.warning("cached face squares (margin %.2f) are smaller than the augmentation's largest window "
                        "(%.2f roi sides): corners will be zero-filled", faces.margin, 2 * need / faces.roi_scale)
    size = cfg.size
    lm_t = tf.constant(faces.landmarks, tf.float32)
    ps_t = tf.constant(faces.pixel_scale, tf.float32)
    stream = _index_stream(len(faces), batch_size, seed, WILD_TAG, start_epoch, start_step, shuffle, epochs,
                           drop_remainder)

    if faces.mode == "memory":
        store = faces.images
        compiled = _compiled("wild_stack", cfg, augment)

        def batch_fn(idx, rand):
            return compiled(store, idx, tf.gather(lm_t, idx), tf.gather(ps_t, idx), rand)

        ds = stream.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(_plain(batch_fn), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        paths_t = tf.constant([s.image_path for s in faces.samples], tf.string)

        def elem_fn(idx, rand):
            img = decode_bgr(paths_t[idx])
            transforms, labels = sample_geometry(lm_t[idx][None], rand[None], cfg, augment)
            crop = warp_images(img[None], transforms, size)[0]
            return crop, labels[0], rand

        batch_fn = _compiled("wild_crops", cfg, augment)

        ds = stream.map(_plain(elem_fn), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(_plain(batch_fn), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def labelled_dataset(crops: LabelledCrops | Sequence[ParamSample], cfg: AugmentConfig | None = None,
                     batch_size: int = 8, seed: int = 0, start_epoch: int = 0, shuffle: bool = True,
                     augment: bool = True, *, start_step: int = 0, epochs: int | None = None,
                     drop_remainder: bool = True):
    """Batches of 3D-labelled crops: ``{"image": (B, S, S, 3) uint8, "params": (B, 62) float32 raw}``.

    Colour jitter only (``cfg``'s brightness/contrast/saturation/hue); geometric jitter and mirroring are
    not applied (they would invalidate the parameters). Same resume/epoch rules as :func:`wild_dataset`.
    """
    import tensorflow as tf

    cfg = cfg or AugmentConfig()
    _validate(cfg)
    if not isinstance(crops, LabelledCrops):
        crops = load_labelled_crops(crops, cfg.size)
    if crops.size != cfg.size:
        raise DataError(f"labelled crops were loaded at {crops.size} px but the config asks for {cfg.size}")
    params_t = tf.constant(crops.params, tf.float32)
    stream = _index_stream(len(crops), batch_size, seed, LABELLED_TAG, start_epoch, start_step, shuffle, epochs,
                           drop_remainder)

    colour = _compiled("colour", cfg, True)

    def finish(images, idx, rand):
        images = colour(images, rand) if augment else images
        return {"image": images, "params": tf.gather(params_t, idx)}

    if crops.mode == "memory":
        store = crops.images
        ds = stream.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(_plain(lambda idx, rand: finish(tf.gather(store, idx), idx, rand)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        paths_t = tf.constant([s.image_path for s in crops.samples], tf.string)
        size = cfg.size
        ds = stream.map(_plain(lambda idx, rand: (_decode_crop(paths_t[idx], size), idx, rand)),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(_plain(finish), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def mixed_dataset(labelled, wild):
    """Zip a labelled and a wild stream: ``{"labelled": {...}, "wild": {...}}`` per step; the ratio is the
    two streams' batch sizes (2DASL: 8 + 8). Both streams should be infinite (or the shorter one ends it)."""
    import tensorflow as tf

    ds = tf.data.Dataset.zip(labelled, wild).map(_plain(lambda lab, w: {"labelled": lab, "wild": w}))
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


# ---------------------------------------------------------------------------- from configs
def load_wild(cfg: WildDataConfig) -> tuple[WildFaces, WildFaces | None]:
    """List, split and load the in-the-wild faces of ``cfg`` → ``(train, holdout or None)``."""
    samples: list[FaceSample] = []
    if cfg.holdout_from:  # split only these folders, use the others whole
        from_dirs = {Path(p).resolve() for p in cfg.holdout_from}
        train, held = [], []
        for folder in cfg.pts_folders:
            faces = list_pts_faces([folder])
            if Path(folder).resolve() in from_dirs:
                a, b = split_holdout(faces, cfg.holdout_every, cfg.holdout_offset)
                train, held = train + a, held + b
            else:
                train += faces
        if cfg.lp_folders:
            train += list_300wlp(cfg.lp_folders)
        samples = train + held
    else:
        if cfg.pts_folders:
            samples += list_pts_faces(cfg.pts_folders)
        if cfg.lp_folders:
            samples += list_300wlp(cfg.lp_folders)
        train, held = split_holdout(samples, cfg.holdout_every, cfg.holdout_offset)
    if not samples:
        raise DataError("no in-the-wild data: set pts_folders and/or lp_folders")
    kw = dict(cache=cfg.cache, cache_size=cfg.cache_size, cache_margin=cfg.cache_margin,
              roi_scale=cfg.augment.roi_scale, cache_limit_mb=cfg.cache_limit_mb)
    return load_wild_faces(train, **kw), (load_wild_faces(held, **kw) if held else None)


def load_labelled(cfg: LabelledDataConfig) -> LabelledCrops:
    """List and load the 3D-labelled crops of ``cfg``."""
    if not (cfg.root and cfg.list_file and cfg.params_file):
        raise DataError("labelled data needs root, list_file and params_file")
    samples = list_3ddfa_params(cfg.root, cfg.list_file, cfg.params_file, cfg.params_whitened,
                                cfg.whitening_file or None)
    return load_labelled_crops(samples, cfg.augment.size, cfg.cache, cfg.cache_limit_mb)
