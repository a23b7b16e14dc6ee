"""tf.data input pipelines for 2DASL training: in-the-wild faces of several sources, 3D-labelled crops, mixed.

Elements (``S`` = ``AugmentConfig.size``, crops BGR uint8, points 0-based crop pixels, y down, NaN = not visible):

* :func:`wild_dataset` / :func:`wild_sources_dataset`: ``{"image": (B, S, S, 3) uint8, "landmarks": (B, P, 2)
  float32, "map_points": (B, 18, 2) float32, "map": (B, S, S) float32}`` (+ ``"teacher": (B, 62)`` raw params
  when the faces carry teacher labels, and ``"teacher_landmarks": (B, 68, 2)`` when they carry the teacher's
  flip-averaged landmarks). ``landmarks`` are in the run's point layout
  (:class:`~tf2dasl.data.landmark_sets.PointLayout`: the 68-point set's slots first, then AFLW's 21, NaN in the
  slots of the other sets; one source alone: its own ``K`` points). ``map_points`` are 2DASL's 18 landmark-map
  points of the given landmarks (NaN where not visible) and ``map`` their map (-1, +1 at visible points).
  Every batch holds a fixed number of faces of each source (``count``: the config's ``weight`` shares of the
  batch, :func:`~tf2dasl.data.data_config.split_counts`), each source streaming its own epochs.
* :func:`labelled_dataset`: ``{"image": (B, S, S, 3) uint8, "params": (B, 62) float32}`` raw 3DDFA params;
  colour jitter only (a geometric change or mirror would invalidate the params; no param flip is done).
* :func:`mixed_dataset`: ``{"labelled": {...}, "wild": {...}}``, e.g. 8 + 8 faces per step as 2DASL.

Teacher labels: an augmented crop is a similarity transform of the plain crop or of its mirror image, so its
teacher parameters are the cached ones of that view, transformed (:mod:`tf2dasl.data.teacher`).

Reproducibility: epoch ``e`` of a source visits its samples in ``stateless_shuffle(range(N), seed=f(seed, e))``
order and sample ``i`` gets row ``i`` of ``stateless_uniform((N, K), seed=f(seed, e))`` as its random numbers,
so every batch is a pure function of (seed, epoch, sample indices). Each epoch holds ``steps_per_epoch`` whole
batches (the remainder of the permutation is dropped), so ``start_epoch=k`` / ``start_step=g`` yield exactly
what an uninterrupted iterator yields from epoch ``k`` / batch ``g`` on (``--resume``). Parallel maps run with
``deterministic=True`` and every op is deterministic on CPU, so a resumed run matches bit for bit on the same
machine and TensorFlow build.

Each batch is cut from the cached face squares in one XLA-compiled function
(:func:`~tf2dasl.data.augment.augment_stack`: gather-based bilinear warp, colour matrix); streamed faces
(``cache="none"``) use a per-face ``ImageProjectiveTransformV3`` warp. ``pipeline.JIT = False`` runs the same
maths as plain TF ops.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Sequence

import numpy as np
import tensorflow as tf

from ..geometry import tf_ops
from ..geometry.conventions import CropConvention
from .augment import (AugmentConfig, augment_stack, colour_jitter, crop_to_crop, random_numbers, sample_geometry,
                      to_uint8, warp_images)
from .data_config import DataError, validate_augment
from .datasets import WildSource, steps_per_epoch
from .landmark_sets import LANDMARK_SETS, PointLayout
from .loading import (LabelledCrops, WildFaces, decode_bgr, decode_crop, deterministic_options, load_labelled_crops,
                      load_wild_faces, no_autograph)
from .sources import FaceSample, ParamSample
from .teacher import mirror_landmarks_68, transform_params, transform_points

#: XLA-compile the batched augmentation (gathers + colour fused: ~3x faster on CPU than plain TF ops).
JIT = True
#: stream tags: keep the sources' and the labelled stream's randomness apart when they share a seed.
WILD_TAG, LABELLED_TAG, AFLW_TAG = 1, 2, 3
SOURCE_TAGS = {"68": WILD_TAG, "aflw21": AFLW_TAG}


# ---------------------------------------------------------------------------- maps
# ---------------------------------------------------------------------------- per-source batches
@functools.lru_cache(maxsize=32)
def _compiled_cached(kind: str, cfg_fields: tuple, augment: bool, jit: bool, flip: tuple):
    cfg = AugmentConfig(*cfg_fields)
    flip = np.asarray(flip, np.int32)

    if kind == "wild_stack":      # (stack, idx, landmarks, pixel_scale, roi, rand) → crops, labels, plain→crop map
        def fn(stack, idx, lm, ps, roi_c, roi_s, rand):
            crops, labels, tr = augment_stack(stack, idx, lm, rand, cfg, augment, ps, (roi_c, roi_s), flip,
                                              with_transforms=True)
            plain, _ = sample_geometry(lm, rand, cfg, False, ps, (roi_c, roi_s), flip)
            affine, mirrored = crop_to_crop(plain, tr, cfg.size)
            return crops, labels, affine, mirrored
    elif kind == "wild_crops":    # (float crops, rand) → uint8 crops
        def fn(crops, rand):
            return colour_jitter(crops, rand, cfg) if augment else to_uint8(crops)
    else:                         # (uint8 images, rand) → jittered uint8 images
        def fn(images, rand):
            return colour_jitter(images, rand, cfg)
    return tf.function(fn, jit_compile=jit, autograph=False)


def _compiled(kind: str, cfg: AugmentConfig, augment: bool, flip=()):
    """The batched augmentation, XLA-compiled once per (kind, config, augment, landmark set) and input shapes."""
    return _compiled_cached(kind, dataclasses.astuple(cfg), augment, bool(JIT), tuple(int(i) for i in flip))


def _index_stream(n: int, batch_size: int, seed: int, tag: int, start_epoch: int, start_step: int,
                  shuffle: bool, epochs: int | None, drop_remainder: bool, weights: np.ndarray | None = None):
    """Elements ``(index int32, rand (K,) float32)``, epoch after epoch, each epoch a whole number of batches.

    ``weights (n,)``: sampling weights — each epoch then draws its ``n`` samples with replacement in proportion
    to them (stateless, like the shuffle), each draw with its own random numbers."""
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

    logits = None if weights is None else tf.constant(np.log(np.asarray(weights, np.float64))[None], tf.float32)

    def epoch_slices(e):
        key = tf.stack([tf.constant(seed, tf.int64), e])
        if logits is not None and shuffle:
            draw_key = tf.random.experimental.stateless_fold_in(key, tf.constant(tag, tf.int64))
            drawn = tf.cast(tf.random.stateless_categorical(logits, usable, seed=draw_key)[0], tf.int32)
            return tf.data.Dataset.from_tensor_slices((drawn, random_numbers(key, usable, tag)))
        if shuffle:
            shuffle_key = tf.random.experimental.stateless_fold_in(key, tf.constant(tag, tf.int64))
            perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=shuffle_key)
        else:
            perm = tf.range(n, dtype=tf.int32)
        perm = perm[:usable]
        return tf.data.Dataset.from_tensor_slices((perm, tf.gather(random_numbers(key, n, tag), perm)))

    counter = (tf.data.Dataset.counter(first) if epochs is None
               else tf.data.Dataset.range(first, start_epoch + epochs))
    return counter.flat_map(no_autograph(epoch_slices)).skip(skip)


def _source_stream(src: WildSource, layout: PointLayout | None, seed: int, start_epoch: int, start_step: int,
                   shuffle: bool, augment: bool, epochs: int | None, drop_remainder: bool,
                   convention: CropConvention | None):
    """Batches of one source: ``{"image", "landmarks" (in ``layout``), "map_points"[, "teacher"]}``."""
    faces, cfg = src.faces, src.augment
    validate_augment(cfg)
    augment = augment and cfg.enabled
    lset = LANDMARK_SETS[faces.landmark_set]
    flip = np.asarray(lset.flip, np.int32)
    size = cfg.size
    lm_t = tf.constant(faces.landmarks, tf.float32)
    ps_t = tf.constant(faces.pixel_scale, tf.float32)
    rc_t, rs_t = tf.constant(faces.roi_centre, tf.float32), tf.constant(faces.roi_side, tf.float32)
    teacher = faces.teacher is not None and convention is not None
    teacher_t = tf.constant(faces.teacher, tf.float32) if teacher else None
    flip_avg = teacher and faces.teacher_landmarks is not None
    if flip_avg:   # each face's flip-averaged teacher landmarks in the plain crop's and in the mirrored crop's pixels
        t_lm = np.asarray(faces.teacher_landmarks, np.float32)
        t_lm_t = tf.constant(np.stack([t_lm, mirror_landmarks_68(t_lm, size)], axis=1))     # (N, 2, 68, 2)
    stream = _index_stream(len(faces), src.count, seed, SOURCE_TAGS.get(lset.name, WILD_TAG), start_epoch,
                           start_step, shuffle, epochs, drop_remainder, src.weights)
    if layout is not None:
        before, after = layout.offsets[lset.name], layout.size - layout.offsets[lset.name] - lset.size

    def finish(idx, crops, labels, affine, mirrored):
        out = {"image": crops, "map_points": tf_ops.map_points(labels, lset.map_pairs)}
        if layout is not None and (before or after):
            b = tf.shape(labels)[0]
            labels = tf.concat([tf.fill([b, before, 2], np.nan), labels, tf.fill([b, after, 2], np.nan)], axis=1)
        out["landmarks"] = labels
        if teacher:
            views = tf.gather(teacher_t, idx)                                       # (B, 2, 62)
            view = tf.where(mirrored[:, None], views[:, 1], views[:, 0])
            out["teacher"] = transform_params(view, affine, size, convention)
        if flip_avg:
            lm_views = tf.gather(t_lm_t, idx)
            out["teacher_landmarks"] = transform_points(tf.where(mirrored[:, None, None], lm_views[:, 1],
                                                                 lm_views[:, 0]), affine)
        return out

    if faces.mode == "memory":
        store = faces.images
        compiled = _compiled("wild_stack", cfg, augment, flip)

        def batch_fn(idx, rand):
            g = functools.partial(tf.gather, indices=idx)
            return finish(idx, *compiled(store, idx, g(lm_t), g(ps_t), g(rc_t), g(rs_t), rand))

        ds = stream.batch(src.count, drop_remainder=drop_remainder)
        ds = ds.map(no_autograph(batch_fn), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        paths_t = tf.constant([s.image_path for s in faces.samples], tf.string)

        def elem_fn(idx, rand):
            img = decode_bgr(paths_t[idx])
            lm, r, ps, roi = lm_t[idx][None], rand[None], ps_t[idx][None], (rc_t[idx][None], rs_t[idx][None])
            transforms, labels = sample_geometry(lm, r, cfg, augment, ps, roi, flip)
            plain, _ = sample_geometry(lm, r, cfg, False, ps, roi, flip)
            affine, mirrored = crop_to_crop(plain, transforms, size)
            crop = warp_images(img[None], transforms, size)[0]
            return idx, crop, labels[0], affine[0], mirrored[0], rand

        colour = _compiled("wild_crops", cfg, augment)

        def batch_fn(idx, crops, labels, affine, mirrored, rand):
            return finish(idx, colour(crops, rand), labels, affine, mirrored)

        ds = stream.map(no_autograph(elem_fn), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(src.count, drop_remainder=drop_remainder)
        ds = ds.map(no_autograph(batch_fn), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds


def wild_sources_dataset(sources: Sequence[WildSource], layout: PointLayout | None = None, seed: int = 0,
                         start_epoch: int = 0, shuffle: bool = True, augment: bool = True, *, start_step: int = 0,
                         epochs: int | None = None, drop_remainder: bool = True,
                         convention: CropConvention | None = None):
    """Batches of ``sum(count)`` in-the-wild faces, each source's ``count`` faces in turn (see the module doc).

    ``layout``: the point layout of ``landmarks`` (required with several sources). ``convention``: the crop
    convention of the faces' teacher labels (given: a ``teacher`` entry is added). Infinite unless ``epochs``
    is given; ``start_epoch``/``start_step`` resume (``start_step`` batches after the start of ``start_epoch``)."""
    sources = list(sources)
    if not sources:
        raise DataError("no in-the-wild source to stream")
    if len(sources) > 1 and layout is None:
        raise DataError("several sources need a point layout")
    size = sources[0].augment.size
    if any(s.augment.size != size for s in sources):
        raise DataError("all sources must crop to the same size")
    streams = [_source_stream(s, layout, seed, start_epoch, start_step, shuffle, augment, epochs, drop_remainder,
                              convention) for s in sources]
    if len(streams) == 1:
        ds = streams[0]
    else:
        ds = tf.data.Dataset.zip(tuple(streams)).map(
            no_autograph(lambda *parts: {k: tf.concat([p[k] for p in parts], axis=0) for k in parts[0]}))
    ds = ds.map(no_autograph(lambda b: {**b, "map": tf_ops.map_from_points(b["map_points"], size)}),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(deterministic_options())


def wild_dataset(faces: WildFaces | Sequence[FaceSample], cfg: AugmentConfig | None = None, batch_size: int = 8,
                 seed: int = 0, start_epoch: int = 0, shuffle: bool = True, augment: bool = True, *,
                 start_step: int = 0, epochs: int | None = None, drop_remainder: bool = True,
                 layout: PointLayout | None = None, convention: CropConvention | None = None):
    """Batches of one source's in-the-wild faces (:func:`wild_sources_dataset`): ``{"image": (B, S, S, 3) uint8,
    "landmarks": (B, K, 2) float32 crop px, "map_points": (B, 18, 2), "map": (B, S, S) float32}``.

    ``faces``: :func:`~tf2dasl.data.loading.load_wild_faces`'s result, or samples (loaded with the defaults).
    Validation: ``shuffle=False, augment=False, epochs=1, drop_remainder=False``.
    """
    cfg = cfg or AugmentConfig()
    validate_augment(cfg)
    if not isinstance(faces, WildFaces):
        faces = load_wild_faces(faces, roi_scale=cfg.roi_scale)
    if faces.mode == "memory":
        need = cfg.window_extent() * cfg.roi_scale
        if augment and faces.margin * faces.roi_scale / 2 < need - 1e-6 and faces.landmark_set == "68":
            logging.getLogger(__name__).warning(
                "cached face squares (margin %.2f) are smaller than the augmentation's largest window (%.2f roi "
                "sides): corners will be zero-filled", faces.margin, 2 * need / faces.roi_scale)
    return wild_sources_dataset([WildSource(faces, batch_size, cfg)], layout, seed, start_epoch, shuffle, augment,
                                start_step=start_step, epochs=epochs, drop_remainder=drop_remainder,
                                convention=convention)


def plain_crops(faces: WildFaces, cfg: AugmentConfig, batch_size: int = 256):
    """Every face's plain (un-augmented) crop and its points, in order: ``(N, S, S, 3)`` uint8, ``(N, K, 2)``."""
    crops, points = [], []
    for b in wild_dataset(faces, cfg, batch_size, shuffle=False, augment=False, epochs=1, drop_remainder=False):
        crops.append(b["image"].numpy())
        points.append(b["landmarks"].numpy())
    return np.concatenate(crops), np.concatenate(points)


def labelled_dataset(crops: LabelledCrops | Sequence[ParamSample], cfg: AugmentConfig | None = None,
                     batch_size: int = 8, seed: int = 0, start_epoch: int = 0, shuffle: bool = True,
                     augment: bool = True, *, start_step: int = 0, epochs: int | None = None,
                     drop_remainder: bool = True):
    """Batches of 3D-labelled crops: ``{"image": (B, S, S, 3) uint8, "params": (B, 62) float32 raw}``.

    Colour jitter only (``cfg``'s brightness/contrast/saturation/hue); geometric jitter and mirroring are
    not applied (they would invalidate the parameters). Same resume/epoch rules as :func:`wild_dataset`.
    """
    cfg = cfg or AugmentConfig()
    validate_augment(cfg)
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
        ds = ds.map(no_autograph(lambda idx, rand: finish(tf.gather(store, idx), idx, rand)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        paths_t = tf.constant([s.image_path for s in crops.samples], tf.string)
        size = cfg.size
        ds = stream.map(no_autograph(lambda idx, rand: (decode_crop(paths_t[idx], size), idx, rand)),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(no_autograph(finish), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(deterministic_options())


def mixed_dataset(labelled, wild):
    """Zip a labelled and a wild stream: ``{"labelled": {...}, "wild": {...}}`` per step; the ratio is the
    two streams' batch sizes (2DASL: 8 + 8). Both streams should be infinite (or the shorter one ends it)."""
    ds = tf.data.Dataset.zip(labelled, wild).map(no_autograph(lambda lab, w: {"labelled": lab, "wild": w}))
    return ds.prefetch(tf.data.AUTOTUNE).with_options(deterministic_options())
