"""Teacher labels, computed once per crop and cached: the frozen teacher's parameters for every training face.

Without 3D-labelled data the initial model is the *teacher*: its parameters for a face are the distillation
anchor and the critic's "real" pairs. They are computed once for every face's plain crop and for its mirror
image (``crop[:, ::-1]``), stored in ``CACHE_DIR/<teacher fingerprint>.npz`` keyed by the crop's pixels, and
reused by every later run with the same teacher (a different teacher — other weights, whitening, input
convention — has another fingerprint, so nothing stale is ever read). An augmented crop is a similarity
transform of the plain (or mirrored) crop, so its label is that transform applied to the cached parameters
(:func:`transform_params`, exact for weak perspective): no teacher runs during training.

The two views also give a better 2D anchor than either alone: :func:`flip_average_landmarks` averages the
teacher's 68 landmarks on the crop with those on the mirror image, mirrored back (``teacher_flip_average``).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from ..errors import UserError
from ..geometry.conventions import CropConvention
from ..io.outputs import OutputError, atomic_file, make_folder
from .augment import mirror_labels

#: teacher parameters per face: the plain crop's and the mirrored crop's
VIEWS = ("plain", "mirrored")
CACHE_VERSION = 1


def mirror_landmarks_68(landmarks: np.ndarray, size: int) -> np.ndarray:
    """68 landmarks ``(..., 68, D)`` in crop pixels of a ``size``-pixel crop → the same face's landmarks in its
    mirror image ``crop[:, ::-1]`` (``x' = size - 1 - x``, points renamed by the 68-point mirror permutation): the
    pixel mirror, :func:`tf2dasl.data.augment.mirror_labels` at one image pixel per crop pixel."""
    return mirror_labels(landmarks, size)


def flip_average_landmarks(plain: np.ndarray, mirrored: np.ndarray, size: int) -> np.ndarray:
    """The teacher's flip-averaged 68 landmarks ``(N, 68, D)`` of the plain crops: the mean of its landmarks on
    each crop (``plain``) and of those on the crop's mirror image (``mirrored``, in the mirror's pixels) mirrored
    back. On the AFLW2000-3D dev slice this lowers mb05's 68-point NME from 3.852 / 3.085 to 3.739 / 3.036
    (original / re-annotated ground truth)."""
    return (np.asarray(plain, np.float32) + mirror_landmarks_68(mirrored, size)) / 2


class TeacherCacheError(UserError):
    """A teacher-label cache file that cannot be read or written (one line naming it)."""


def fingerprint(arrays, description: dict) -> str:
    """A key for a teacher: sha256 over its weight arrays (in order) and a JSON ``description`` (spec,
    whitening, ...) → 24 hex digits."""
    h = hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:24]


def crop_keys(crops: np.ndarray) -> np.ndarray:
    """``(N, S, S, 3)`` uint8 crops → ``(N,)`` sha1 hex digests of their pixels (the cache's per-crop key)."""
    crops = np.ascontiguousarray(crops)
    return np.array([hashlib.sha1(c.tobytes()).hexdigest() for c in crops])


class TeacherCache:
    """``CACHE_DIR/<fingerprint>.npz``: ``keys (M,)`` crop digests and ``params (M, 2, 62)`` raw parameters
    (plain, mirrored). ``lookup`` returns NaN rows for unknown crops; ``store`` adds rows and rewrites the file
    atomically (:func:`tf2dasl.io.outputs.atomic_file`: temporary file in the same folder, fsync, then rename)."""

    def __init__(self, cache_dir: str | os.PathLike, teacher_fingerprint: str):
        self.dir, self.fingerprint = Path(cache_dir), teacher_fingerprint
        self.path = self.dir / f"teacher-{teacher_fingerprint}.npz"
        self._rows: dict[str, np.ndarray] = {}
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    if int(z["version"]) != CACHE_VERSION:
                        raise ValueError(f"cache version {int(z['version'])}, this tf2dasl writes {CACHE_VERSION}")
                    self._rows = dict(zip(z["keys"].tolist(), z["params"]))
            except (ValueError, KeyError, OSError, EOFError) as exc:
                raise TeacherCacheError(f"{self.path}: unreadable teacher-label cache ({exc}); delete it and it is "
                                        "rebuilt") from None

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, keys) -> np.ndarray:
        """``(N,)`` keys → ``(N, 2, 62)`` float32 (NaN rows where a crop is not cached)."""
        out = np.full((len(keys), len(VIEWS), 62), np.nan, np.float32)
        for i, k in enumerate(keys):
            row = self._rows.get(str(k))
            if row is not None:
                out[i] = row
        return out

    def store(self, keys, params: np.ndarray) -> None:
        for k, p in zip(keys, np.asarray(params, np.float32)):
            self._rows[str(k)] = p
        keys_all = np.array(list(self._rows), dtype="U40")
        try:
            make_folder(self.dir)
            with atomic_file(self.path) as f:
                np.savez(f, version=np.int64(CACHE_VERSION), keys=keys_all,
                         params=np.stack(list(self._rows.values())).astype(np.float32))
        except OutputError as exc:
            raise TeacherCacheError(f"{self.path}: cannot write the teacher-label cache ({exc.reason})") from None


def teacher_labels(crops: np.ndarray, predict: Callable[[np.ndarray], np.ndarray], cache: TeacherCache | None,
                   batch_size: int = 256, progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, int]:
    """The teacher's raw parameters ``(N, 2, 62)`` for plain crops ``(N, S, S, 3)`` uint8 and their mirror
    images, from ``cache`` where it has them, else ``predict(crops) -> (n, 62)`` (then stored). Returns the
    labels and how many crops were computed (0: all reused)."""
    keys = crop_keys(crops) if cache is not None else None
    labels = cache.lookup(keys) if cache is not None else np.full((len(crops), len(VIEWS), 62), np.nan, np.float32)
    todo = np.flatnonzero(~np.isfinite(labels).all(axis=(1, 2)))
    for start in range(0, len(todo), batch_size):
        idx = todo[start:start + batch_size]
        labels[idx, 0] = predict(crops[idx])
        labels[idx, 1] = predict(np.ascontiguousarray(crops[idx, :, ::-1]))
        if progress is not None:
            progress(len(idx))
    if cache is not None and len(todo):
        cache.store(keys[todo], labels[todo])
    return labels, len(todo)


def transform_params(params, affine, size: int, convention: CropConvention):
    """TF: raw parameters ``(B, 62)`` of a crop → those of the crop transformed by ``affine (B, 2, 3)`` (crop
    pixels → crop pixels, a scaled rotation: no reflection), so that their projected points are the transformed
    points exactly (weak perspective: the 2D affine acts on the first two rows of ``P = [sR | t]``, its scale on
    the third). ``convention``: how the parameters' model frame maps to crop pixels."""
    params = tf.convert_to_tensor(params, tf.float32)
    affine = tf.convert_to_tensor(affine, tf.float32)
    d = tf.constant([[1.0, 0.0], [0.0, -1.0]])                     # crop = D model + c0 (y flips)
    c0 = tf.constant([-convention.x_shift, size + convention.y_flip_offset], tf.float32)
    a, b = affine[:, :, :2], affine[:, :, 2]
    g = d @ a @ d                                                   # (B, 2, 2) in the model frame
    g_off = tf.linalg.matvec(tf.broadcast_to(d, tf.shape(a)), tf.linalg.matvec(a, tf.broadcast_to(c0, tf.shape(b)))
                             + b - c0)
    pose = tf.reshape(params[:, :12], (-1, 3, 4))
    top = g @ pose[:, :2, :] + tf.concat([tf.zeros_like(pose[:, :2, :3]), g_off[:, :, None]], axis=2)
    scale = tf.sqrt(tf.abs(g[:, 0, 0] * g[:, 1, 1] - g[:, 0, 1] * g[:, 1, 0]))[:, None, None]
    new_pose = tf.concat([top, pose[:, 2:, :] * scale], axis=1)
    return tf.concat([tf.reshape(new_pose, (-1, 12)), params[:, 12:]], axis=1)


def transform_points(points, affine):
    """TF: points ``(B, K, 2)`` in crop pixels → ``affine (B, 2, 3)`` applied (``u' = A u + b``)."""
    affine = tf.convert_to_tensor(affine, tf.float32)
    return tf.einsum("bij,bkj->bki", affine[:, :, :2], tf.convert_to_tensor(points, tf.float32)) + affine[:, None, :, 2]
