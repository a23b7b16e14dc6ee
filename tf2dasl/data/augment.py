"""Face crops with augmentation, in TensorFlow: one affine warp + one colour matrix per face, all batched.

Every random number comes from :func:`random_numbers` — ``tf.random.stateless_uniform`` over a whole
epoch, row ``i`` for sample ``i`` — so an augmented face is a pure function of (seed, epoch, sample
index): a resumed run reproduces an uninterrupted one bit for bit.

Geometry: one affine warp, bilinear with zero fill — ``tf.raw_ops.ImageProjectiveTransformV3`` for single
images of any size (:func:`warp_images`), or the same sampling as four gathers from a stack of cached faces
(:func:`gather_warp`, which XLA fuses: 2-3x faster on CPU). From the landmarks
``(68, 2)`` the roi is 3DDFA_V2's ``parse_roi_box_from_landmark`` (square on the longer side of the
landmark box, times ``roi_scale`` = sqrt(2), i.e. its diagonal; :func:`tf2dasl.geometry.roi.roi_from_landmarks`).
The crop window is that roi scaled by ``s``, shifted by ``(dx, dy) * side`` and rotated by ``theta``
about its centre, optionally mirrored. Two coordinate rules, both those of the inference path:

* pixels are sampled like ``crop_image`` (``cv2.resize``'s half-pixel rule): crop pixel ``j`` reads the
  source at ``A(j + 0.5) - 0.5``, where ``A`` maps crop coordinates to image coordinates
  (``A(u) = c + k R (u - S/2)``, ``k`` = image pixels per crop pixel);
* landmark labels follow :func:`tf2dasl.geometry.camera.image_to_crop` (``x_c = (x - x0) * S / side``,
  which :func:`~tf2dasl.geometry.camera.crop_to_image` inverts at test time). That rule sits
  ``0.5 - 0.5/k`` crop pixels from the sampled content; the labels of rotated/mirrored crops are placed
  at their content plus the same offset, so mirroring does not bias them (``x' = S - 1/k - x`` for a
  plain mirror).

With augmentation off the crop equals ``crop_image(image, roi_from_landmarks(lm))`` up to its integer
rounding of the roi box, and the labels equal ``image_to_crop(lm, roi)`` exactly (float32).

Colour (BGR, values 0..255): brightness (add), contrast (blend with the mean grey), saturation (blend
with each pixel's grey), hue (rotation about the grey axis, SVG ``feHueRotate``'s matrix) — all linear,
composed into one ``3 x 3`` matrix and offset per face, applied after the warp and rounded once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ..geometry import tf_ops
from ..geometry.morphable_model import FLIP_PERMUTATION_68
from ..geometry.roi import ROI_LANDMARK_SCALE, roi_center_side

#: Columns of the per-face random numbers (uniform in [0, 1)).
RANDOM_KEYS = ("scale", "shift_x", "shift_y", "rotation", "flip", "brightness", "contrast", "saturation", "hue")
NUM_RANDOM = len(RANDOM_KEYS)

#: Grey of a BGR pixel (ITU-R 601, as ``cv2.cvtColor(BGR2GRAY)``).
GREY_BGR = np.array([0.114, 0.587, 0.299], np.float32)


@dataclass
class AugmentConfig:
    """Crop and augmentation options (the training config nests this).

    size: crop side ``S`` in pixels. roi_scale: roi side / longer side of the landmark box (3DDFA_V2's
    ``parse_roi_box_from_landmark``: sqrt(2)). scale: range of the crop window's side relative to the roi
    (> 1 zooms out). shift: largest centre shift per axis, fraction of the roi side. rotation: largest
    in-plane rotation, degrees. brightness: largest added value, fraction of 255. contrast, saturation:
    ranges of the blend factors (1 = unchanged). hue: largest hue rotation, fraction of the colour circle.
    flip: probability of a horizontal mirror (landmarks permuted by :data:`FLIP_PERMUTATION_68`). enabled: false
    trains on the plain crops (no geometric or colour change at all).
    """

    size: int = 120
    roi_scale: float = ROI_LANDMARK_SCALE
    scale: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.05
    rotation: float = 15.0
    brightness: float = 0.15
    contrast: tuple[float, float] = (0.75, 1.25)
    saturation: tuple[float, float] = (0.75, 1.25)
    hue: float = 0.03
    flip: float = 0.5
    enabled: bool = True

    def validate(self) -> None:
        if self.size < 8:
            raise ValueError(f"size must be at least 8, got {self.size}")
        if self.roi_scale <= 0:
            raise ValueError(f"roi_scale must be positive, got {self.roi_scale}")
        for name in ("scale", "contrast", "saturation"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range 0 < low <= high, got {[lo, hi]}")
        if not 0 <= self.shift <= 0.5:
            raise ValueError(f"shift must be in [0, 0.5], got {self.shift}")
        if not 0 <= self.rotation <= 180:
            raise ValueError(f"rotation must be in [0, 180] degrees, got {self.rotation}")
        if not 0 <= self.brightness <= 1:
            raise ValueError(f"brightness must be in [0, 1], got {self.brightness}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        if not 0 <= self.flip <= 1:
            raise ValueError(f"flip must be a probability, got {self.flip}")

    def __post_init__(self):  # validated by the config loader and by the pipeline builders
        self.scale, self.contrast, self.saturation = tuple(self.scale), tuple(self.contrast), tuple(self.saturation)

    def window_extent(self) -> float:
        """Largest half-extent (per axis) of a crop window around the roi centre, in roi sides."""
        t = math.radians(min(self.rotation, 45.0))
        return self.scale[1] * (math.cos(t) + math.sin(t)) / 2 + self.shift


# ---------------------------------------------------------------------------- TF: randomness
def random_numbers(seed, n: int, tag: int = 0):
    """``(n, NUM_RANDOM)`` float32 uniforms in [0, 1), row ``i`` for sample ``i``; ``seed``: ``(2,)`` int
    (e.g. ``[run_seed, epoch]``), ``tag`` separates streams sharing a seed."""
    key = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), tf.cast(1000 + tag, tf.int64))
    return tf.random.stateless_uniform((n, NUM_RANDOM), seed=key, dtype=tf.float32)


def _lerp(lo, hi, u):
    return lo + (hi - lo) * u


# ---------------------------------------------------------------------------- TF: geometry
def landmark_roi(landmarks, pixel_scale, roi_scale: float):
    """numpy: the roi ``(centre (B, 2), side (B,))`` :func:`sample_geometry` makes from ``landmarks (B, K, 2)``
    source pixels (no NaN) with ``pixel_scale (B,)`` — the labels' "area" frame, see the module doc."""
    ell = np.asarray(landmarks, np.float64) + (0.5 - 0.5 / np.asarray(pixel_scale, np.float64))[:, None, None]
    return roi_center_side(ell, roi_scale)


def sample_geometry(landmarks, rand, cfg: AugmentConfig, augment: bool = True, pixel_scale=None, roi=None,
                    flip=None):
    """Per-face crop windows: the warp transforms and the crop's landmark labels.

    landmarks: ``(B, K, 2)`` float32 source pixels (0-based pixel centres of the image the warp reads; NaN =
    not visible, carried through). rand: ``(B, NUM_RANDOM)`` uniforms (:func:`random_numbers`). pixel_scale:
    ``(B,)`` original-image pixels per source pixel (1 when the source is the original image; see ``pipeline``'s
    face cache), used only for the labels' half-pixel rule. roi: ``(centre (B, 2), side (B,))`` of the window in
    the labels' "area" frame (:func:`landmark_roi`); default: made from the landmarks (which then must all be
    visible). flip: the ``(K,)`` mirror permutation of the landmark set (default :data:`FLIP_PERMUTATION_68`).
    Returns ``transforms (B, 8)`` for ``ImageProjectiveTransformV3`` (crop pixel → source pixel) and
    ``labels (B, K, 2)`` crop pixels.
    """
    lm = tf.convert_to_tensor(landmarks, tf.float32)
    rand = tf.convert_to_tensor(rand, tf.float32)
    b = tf.shape(lm)[0]
    ps = tf.ones([b], tf.float32) if pixel_scale is None else tf.reshape(tf.cast(pixel_scale, tf.float32), [-1])
    size = float(cfg.size)
    if roi is None:
        # labels' rule works on "area" coordinates; the landmarks (pixel centres) sit 0.5 - 0.5/ps from them
        ell = lm + (0.5 - 0.5 / ps)[:, None, None]
        centre, side = tf_ops.roi_center_side(ell, cfg.roi_scale)
    else:
        centre, side = tf.cast(roi[0], tf.float32), tf.cast(roi[1], tf.float32)
    if augment:
        s = _lerp(cfg.scale[0], cfg.scale[1], rand[:, 0])
        shift = (2.0 * rand[:, 1:3] - 1.0) * cfg.shift * side[:, None]
        theta = (2.0 * rand[:, 3] - 1.0) * math.radians(cfg.rotation)
        f = tf.where(rand[:, 4] < cfg.flip, -1.0, 1.0)
    else:
        s, shift, theta, f = tf.ones([b]), tf.zeros([b, 2]), tf.zeros([b]), tf.ones([b])
    c = centre + shift
    k = side * s / size                                               # source px per crop px
    cos, sin = tf.cos(theta), tf.sin(theta)
    # sampling: source = k R F (j + 0.5 - S/2) + c - 0.5, F = diag(f, 1) mirrors the crop's x
    l00, l01, l10, l11 = k * f * cos, -k * sin, k * f * sin, k * cos
    d0, d1 = f * (0.5 - size / 2), tf.fill([b], 0.5 - size / 2)
    t0 = k * (cos * d0 - sin * d1) + c[:, 0] - 0.5
    t1 = k * (sin * d0 + cos * d1) + c[:, 1] - 0.5
    zeros = tf.zeros([b])
    transforms = tf.stack([l00, l01, t0, l10, l11, t1, zeros, zeros], axis=1)
    # content position in the crop: inverse of the sampling map, (1/k) F R^T (lm - t)
    rx, ry = lm[..., 0] - t0[:, None], lm[..., 1] - t1[:, None]
    px = f[:, None] * (cos[:, None] * rx + sin[:, None] * ry) / k[:, None]
    py = (-sin[:, None] * rx + cos[:, None] * ry) / k[:, None]
    off = (0.5 - 0.5 / (k * ps))[:, None]
    labels = tf.stack([px + off, py + off], axis=-1)
    if augment and cfg.flip > 0:
        mirrored = tf.gather(labels, FLIP_PERMUTATION_68 if flip is None else flip, axis=1)
        labels = tf.where((f < 0)[:, None, None], mirrored, labels)
    return transforms, labels


def mirror_labels(labels, size: int, image_scale=1.0, flip=FLIP_PERMUTATION_68) -> np.ndarray:
    """Numpy: landmark labels ``(..., K, D)`` of plain crops → the same faces' labels in the mirrored crops
    (``crop[:, ::-1]``), by the labels' half-pixel rule (module doc): ``x' = size - 1/k - x`` with ``image_scale``
    ``k`` (broadcast over the leading dims) original-image pixels per crop pixel, points renamed by ``flip`` — what
    :func:`sample_geometry` gives a mirrored, otherwise plain crop. ``k = 1`` is the pixel mirror
    ``x' = size - 1 - x`` of points that sit on the crop's pixel content (a model's predictions)."""
    k = np.asarray(image_scale, np.float64)[..., None]
    out = np.array(np.asarray(labels, np.float64)[..., np.asarray(flip), :], np.float64)
    out[..., 0] = size - 1.0 / k - out[..., 0]
    return out.astype(np.float32)


def crop_to_crop(plain, augmented, size: int):
    """The map from the plain crop's pixels to an augmented crop's: ``plain``, ``augmented`` ``(B, 8)`` transforms
    of :func:`sample_geometry` (``augment=False`` / ``True``, same faces) → ``(B, 2, 3)`` affine ``M`` with
    ``u_aug = M @ [u, 1]`` and ``mirrored (B,)`` bool. For a mirrored crop ``u`` are pixels of the *mirrored* plain
    crop (``crop[:, ::-1]``: ``x -> size - 1 - x``), so ``M`` is always a scaled rotation (no reflection)."""
    def lin(t):
        return tf.reshape(tf.stack([t[:, 0], t[:, 1], t[:, 3], t[:, 4]], axis=1), (-1, 2, 2))

    lp = lin(plain)
    ta, tp = tf.stack([augmented[:, 2], augmented[:, 5]], 1), tf.stack([plain[:, 2], plain[:, 5]], 1)
    det = augmented[:, 0] * augmented[:, 4] - augmented[:, 1] * augmented[:, 3]    # 2x2 by hand: XLA on CPU
    mirrored = det < 0                                                             # has no MatrixDeterminant
    f = tf.where(mirrored, -1.0, 1.0)
    zeros = tf.zeros_like(f)
    mirror = tf.reshape(tf.stack([f, zeros, zeros, tf.ones_like(f)], 1), (-1, 2, 2))        # diag(f, 1)
    m_off = tf.stack([tf.where(mirrored, float(size - 1), 0.0), zeros], 1)                  # x -> size - 1 - x
    la_inv = tf.reshape(tf.stack([augmented[:, 4], -augmented[:, 1], -augmented[:, 3], augmented[:, 0]], 1),
                        (-1, 2, 2)) / det[:, None, None]
    a = la_inv @ lp @ mirror
    b = tf.linalg.matvec(la_inv, tf.linalg.matvec(lp, m_off) + tp - ta)
    return tf.concat([a, b[:, :, None]], axis=2), mirrored


def warp_images(images, transforms, size: int):
    """Warp ``images (B, H, W, 3)`` (any dtype) by ``transforms (B, 8)`` → ``(B, size, size, 3)`` float32
    bilinear values, zero fill (``ImageProjectiveTransformV3`` on float32: exact, any image size)."""
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32), transforms=tf.cast(transforms, tf.float32),
        output_shape=tf.constant([size, size], tf.int32), fill_value=tf.constant(0.0),
        interpolation="BILINEAR", fill_mode="CONSTANT")
    return out


def gather_warp(stack, idx, transforms, size: int):
    """Warp faces ``stack[idx]`` of a uint8 stack ``(N, H, W, 3)`` by ``transforms (B, 8)`` (affine part) →
    ``(B, size, size, 3)`` float32: the same bilinear, zero-fill sampling as :func:`warp_images`, written
    as four gathers so that XLA fuses it (2-3x faster than ``ImageProjectiveTransformV3`` on CPU, and the
    faces are never copied out of the stack)."""
    stack = tf.convert_to_tensor(stack)
    h, w = tf.shape(stack)[1], tf.shape(stack)[2]
    flat = tf.reshape(stack, [-1, 3])
    t = tf.cast(transforms, tf.float32)[:, :, None, None]                       # (B, 8, 1, 1)
    j = tf.range(size, dtype=tf.float32)
    gx, gy = j[None, None, :], j[None, :, None]
    x = t[:, 0] * gx + t[:, 1] * gy + t[:, 2]                                   # (B, S, S)
    y = t[:, 3] * gx + t[:, 4] * gy + t[:, 5]
    x0f, y0f = tf.floor(x), tf.floor(y)
    fx, fy = x - x0f, y - y0f
    x0, y0 = tf.cast(x0f, tf.int32), tf.cast(y0f, tf.int32)
    base = (tf.cast(idx, tf.int32) * h * w)[:, None, None]
    out = tf.zeros(tf.concat([tf.shape(x), [3]], 0), tf.float32)
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        v = tf.cast(tf.gather(flat, tf.where(ok, base + yi * w + xi, 0)), tf.float32)
        out += v * tf.where(ok, wt, 0.0)[..., None]
    return out


def to_uint8(images):
    """float32 pixel values → uint8, rounded (half up) and clipped to [0, 255]."""
    return tf.cast(tf.clip_by_value(images + 0.5, 0.0, 255.0), tf.uint8)


# ---------------------------------------------------------------------------- TF: colour
def _hue_matrix_bgr(theta):
    """``(B, 3, 3)`` hue rotation (SVG ``feHueRotate``) for BGR pixels; rows sum to 1 (grey is fixed)."""
    c, s = tf.cos(theta), tf.sin(theta)
    rgb = [[0.213 + 0.787 * c - 0.213 * s, 0.715 - 0.715 * c - 0.715 * s, 0.072 - 0.072 * c + 0.928 * s],
           [0.213 - 0.213 * c + 0.143 * s, 0.715 + 0.285 * c + 0.140 * s, 0.072 - 0.072 * c - 0.283 * s],
           [0.213 - 0.213 * c - 0.787 * s, 0.715 - 0.715 * c + 0.715 * s, 0.072 + 0.928 * c + 0.072 * s]]
    bgr = [[rgb[2 - i][2 - j] for j in range(3)] for i in range(3)]  # reverse rows and columns
    return tf.stack([tf.stack(row, axis=-1) for row in bgr], axis=-2)


def colour_jitter(crops, rand, cfg: AugmentConfig):
    """Colour-jitter ``crops (B, S, S, 3)`` BGR pixel values (uint8, or float32 0..255) → uint8, one
    matrix per face. ``rand``: ``(B, NUM_RANDOM)`` (columns brightness, contrast, saturation, hue)."""
    crops = tf.cast(crops, tf.float32)
    rand = tf.convert_to_tensor(rand, tf.float32)
    b = tf.shape(crops)[0]
    mean_grey = tf.reduce_sum(tf.reduce_mean(crops, axis=[1, 2]) * GREY_BGR, axis=1)   # (B,)
    beta = (2.0 * rand[:, 5] - 1.0) * cfg.brightness * 255.0
    contrast = _lerp(cfg.contrast[0], cfg.contrast[1], rand[:, 6])
    sat = _lerp(cfg.saturation[0], cfg.saturation[1], rand[:, 7])
    theta = (2.0 * rand[:, 8] - 1.0) * cfg.hue * 2.0 * math.pi
    eye = tf.eye(3, batch_shape=[b])
    sat_m = sat[:, None, None] * eye + (1.0 - sat)[:, None, None] * tf.ones([b, 3, 1]) * GREY_BGR[None, None, :]
    m = contrast[:, None, None] * tf.linalg.matmul(_hue_matrix_bgr(theta), sat_m)        # (B, 3, 3)
    # out = M x + beta + (1 - c) mean_grey (rows of M sum to c); +0.5 rounds at the cast
    offset = beta + (1.0 - contrast) * mean_grey + 0.5                                    # (B,)
    m = m[:, None, None]                                                                  # (B, 1, 1, 3, 3)
    ch = [crops[..., i] for i in range(3)]
    out = tf.stack([m[..., d, 0] * ch[0] + m[..., d, 1] * ch[1] + m[..., d, 2] * ch[2] for d in range(3)], axis=-1)
    return tf.cast(tf.clip_by_value(out + offset[:, None, None, None], 0.0, 255.0), tf.uint8)


# ---------------------------------------------------------------------------- TF: all in one
def augment_stack(stack, idx, landmarks, rand, cfg: AugmentConfig, augment: bool = True, pixel_scale=None,
                  roi=None, flip=None, with_transforms: bool = False):
    """Crops and labels of faces ``stack[idx]``: ``stack (N, H, W, 3)`` uint8 BGR, ``idx (B,)``, their
    ``landmarks (B, K, 2)`` source pixels, ``rand (B, NUM_RANDOM)``, ``pixel_scale (B,)``, ``roi``, ``flip`` (see
    :func:`sample_geometry`). Returns ``crops (B, S, S, 3)`` uint8 and ``labels (B, K, 2)`` crop pixels (and the
    warp ``transforms (B, 8)`` with ``with_transforms``). With ``augment=False`` no randomness is used: the plain
    roi crop. XLA-compilable."""
    transforms, labels = sample_geometry(landmarks, rand, cfg, augment, pixel_scale, roi, flip)
    crops = gather_warp(stack, idx, transforms, cfg.size)
    crops = colour_jitter(crops, rand, cfg) if augment else to_uint8(crops)
    return (crops, labels, transforms) if with_transforms else (crops, labels)
