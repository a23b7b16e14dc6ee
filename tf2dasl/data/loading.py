"""Loading training images once: in-the-wild faces (any landmark set) and 3D-labelled crops, decoded in parallel.

Unreadable files are **skipped and counted** (:class:`LoadStats`, one warning line naming them). With
``cache="memory"`` each in-the-wild face is kept as a ``cache_size``-pixel square around its roi
(``cache_margin`` roi sides) from which :mod:`~tf2dasl.data.pipeline` cuts every batch in one XLA-compiled
function; ``cache="none"`` decodes the file at every visit (data sets larger than memory); ``"auto"`` picks
memory under ``cache_limit_mb``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tensorflow as tf

from ..geometry.roi import ROI_LANDMARK_SCALE, roi_center_side
from .augment import to_uint8, warp_images
from .data_config import DataError, check_cache
from .sources import FaceSample, ParamSample

log = logging.getLogger(__name__)


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
    """Loaded in-the-wild faces of one landmark set (``landmark_set``: ``"68"`` or ``"aflw21"``).

    ``landmarks (N, K, 2)`` (NaN = not visible), ``pixel_scale (N,)`` and the crop window ``roi_centre (N, 2)``,
    ``roi_side (N,)`` (the labels' "area" frame, :func:`~tf2dasl.data.augment.sample_geometry`) are in the *source*
    frame: the cached square (``images (N, P, P, 3)`` uint8, ``mode == "memory"``) or the original image
    (``images is None``, ``mode == "none"``, ``pixel_scale`` 1). ``teacher (N, 2, 62)``: the teacher's raw
    parameters for each face's plain and mirrored crop, once attached (:mod:`tf2dasl.data.teacher`);
    ``teacher_landmarks (N, 68, 2)``: the teacher's flip-averaged 68 landmarks in the plain crop's pixels, when
    attached (the ``anchor68`` target instead of the plain view's projection)."""

    samples: list[FaceSample]
    landmarks: np.ndarray
    pixel_scale: np.ndarray
    images: object | None
    mode: str
    stats: LoadStats
    roi_scale: float
    margin: float
    roi_centre: np.ndarray | None = None
    roi_side: np.ndarray | None = None
    landmark_set: str = "68"
    teacher: np.ndarray | None = None
    teacher_landmarks: np.ndarray | None = None

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
    EXIF orientation is not applied, as the landmarks of 300-W-style sets refer to the stored pixels). JPEGs are
    decoded with libjpeg's accurate integer DCT, as OpenCV (inference) decodes them: pixel for pixel the same
    (TensorFlow's default fast DCT differs by up to ~20 levels)."""
    data = tf.io.read_file(path)
    image = tf.cond(tf.io.is_jpeg(data),
                    lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
                    lambda: tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8))
    return tf.reverse(image, axis=[-1])


def no_autograph(fn):
    """Skip AutoGraph for a tf.data function (no tensor-dependent Python control flow here; faster tracing)."""
    return tf.autograph.experimental.do_not_convert(fn)


def deterministic_options():
    opts = tf.data.Options()
    opts.deterministic = True
    return opts


def _resolve_cache(mode: str, nbytes: int, limit_mb: int) -> str:
    check_cache(mode)
    if mode == "auto":
        return "memory" if nbytes <= limit_mb * 2 ** 20 else "none"
    return mode


def _decode_all(paths: list[str], fn, out_shape, dtype):
    """Run ``fn(path) -> array`` over all paths in parallel; returns ``(ok_indices, stacked arrays)``,
    unreadable files (any decoding error) left out."""
    n = len(paths)
    ds = tf.data.Dataset.from_tensor_slices((tf.range(n, dtype=tf.int32), tf.constant(paths, tf.string)))
    ds = ds.map(no_autograph(lambda i, p: (i, fn(i, p))), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors().batch(64).prefetch(2).with_options(deterministic_options())
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

    All samples must share one landmark set. A face's crop window (roi) is its ``roi`` box when given (partial
    landmark sets: AFLW's crops), else made from its landmarks (``roi_scale`` x their square box, 3DDFA_V2's rule).
    ``memory``: each face becomes a ``cache_size x cache_size`` uint8 square of ``cache_margin`` roi sides
    around its roi (bilinear, zero fill; about ``3 * cache_size**2`` bytes a face: 240 MB for the 1,207
    300-W faces at 256; a 120-px AFLW crop with ``cache_size=120, cache_margin=1`` is kept as it is), its
    landmarks mapped into it. ``none``: only validated; decoded at every visit.
    """
    samples = list(samples)
    if not samples:
        raise DataError("no in-the-wild faces to load")
    sets = {s.landmark_set for s in samples}
    if len(sets) != 1:
        raise DataError(f"faces of several landmark sets ({', '.join(sorted(sets))}) in one source")
    mode = _resolve_cache(cache, len(samples) * cache_size * cache_size * 3, cache_limit_mb)
    paths = [s.image_path for s in samples]
    lms = np.stack([np.asarray(s.landmarks, np.float32) for s in samples])
    given = [s.roi is not None for s in samples]
    if any(given) and not all(given):
        raise DataError("either every face of a source gives its roi box or none does")
    if all(given):
        boxes = np.stack([np.asarray(s.roi, np.float64) for s in samples])
        centre, extent = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2] - boxes[:, 0]
        side, what = extent, "roi box"
    else:
        if not np.isfinite(lms).all():
            raise DataError(f"{paths[int(np.flatnonzero(~np.isfinite(lms).all(axis=(1, 2)))[0])]}: landmarks with "
                            "missing points need the face's roi box")
        centre, extent = roi_center_side(lms, 1.0)  # the landmarks' square box (pixel_scale 1)
        side, what = roi_scale * extent, "landmarks"
    bad = np.flatnonzero(~(np.isfinite(extent) & (extent >= 2.0)))
    if len(bad):
        raise DataError(f"{paths[bad[0]]}: degenerate {what} (box of {extent[bad[0]]:.1f} px); "
                        f"{len(bad)} such face(s) in all")
    if mode == "memory":
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
        # the window in the source's "area" frame: original pixel x sits at (x - q0) / kb there
        roi_c, roi_s = ((centre - q0) / kb[:, None])[ok], (side / kb)[ok]
        images = tf.constant(images)
    else:
        ok, _ = _decode_all(paths, lambda i, p: tf.shape(decode_bgr(p)), None, None)
        src_lm, pixel_scale, images = lms[ok], np.ones(len(ok), np.float32), None
        roi_c, roi_s = centre[ok], side[ok]
    stats = LoadStats(len(samples), len(ok), [paths[i] for i in sorted(set(range(len(samples))) - set(ok.tolist()))])
    _report(stats, "in-the-wild faces")
    if not len(ok):
        raise DataError(f"none of the {len(samples)} in-the-wild images could be read (first: {paths[0]})")
    return WildFaces([samples[i] for i in ok], src_lm, pixel_scale, images, mode, stats, roi_scale, cache_margin,
                     roi_c.astype(np.float32), roi_s.astype(np.float32), sets.pop())


def load_labelled_crops(samples: Sequence[ParamSample], size: int = 120, cache: str = "auto",
                        cache_limit_mb: int = 2048) -> LabelledCrops:
    """Decode every crop once (parallel; resized to ``size`` if needed), skipping unreadable ones; keep them
    in memory per ``cache`` (3DDFA's 636k crops are 27 GB: ``auto`` streams those from the files)."""
    samples = list(samples)
    if not samples:
        raise DataError("no 3D-labelled crops to load")
    mode = _resolve_cache(cache, len(samples) * size * size * 3, cache_limit_mb)
    paths = [s.image_path for s in samples]
    if mode == "memory":
        ok, images = _decode_all(paths, lambda i, p: decode_crop(p, size), (size, size, 3), np.uint8)
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


def decode_crop(path, size: int):
    """A crop file → ``(size, size, 3)`` uint8 BGR (bilinear resize when it is not ``size`` already)."""
    img = decode_bgr(path)
    same = tf.logical_and(tf.shape(img)[0] == size, tf.shape(img)[1] == size)
    return tf.cond(same, lambda: tf.ensure_shape(img, (size, size, 3)),
                   lambda: to_uint8(tf.image.resize(img, (size, size), method="bilinear")))
