"""Reading images robustly: always ``(H, W, 3)`` ``uint8`` **BGR** (OpenCV order), or a clear error.

* decoding is OpenCV's (``cv2.imdecode`` of the file's bytes with ``IMREAD_UNCHANGED``, so paths with
  any characters work and nothing is converted behind our back);
* the EXIF orientation tag is honoured (``IMREAD_UNCHANGED`` ignores it; we read the tag with Pillow
  and apply the rotation/flip ourselves), so a phone photo comes out upright as a viewer shows it;
* grayscale becomes 3 equal channels, 16-bit becomes 8-bit (``round(v * 255 / 65535)``), float images
  are taken as ``[0, 1]``, and an alpha channel is dropped after compositing on black;
* every failure is an :class:`ImageError` whose message is one line ``"<path>: what is wrong"``.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from ..errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")

_EXIF_ORIENTATION_TAG = 0x0112


class ImageError(UserError):
    """An image that cannot be used; the message is one line naming the file and what is wrong."""


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1..8) stored in the encoded image ``data``; 1 when absent or unreadable."""
    try:
        from PIL import Image

        with warnings.catch_warnings():  # e.g. DecompressionBombWarning: we only read the header
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:  # lazy: reads the header only
                value = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        value = int(value)
    except Exception:  # no Pillow plugin for the format, broken EXIF block, ...: keep the pixels as stored
        return 1
    return value if 1 <= value <= 8 else 1


def apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with EXIF ``orientation`` (1..8) into the upright image a viewer shows.

    Same transforms as Pillow's ``ImageOps.exif_transpose``; works on ``(H, W)`` or ``(H, W, C)``.
    """
    if orientation == 2:
        out = image[:, ::-1]
    elif orientation == 3:
        out = image[::-1, ::-1]
    elif orientation == 4:
        out = image[::-1]
    elif orientation == 5:  # transpose
        out = np.swapaxes(image, 0, 1)
    elif orientation == 6:  # rotate 90 degrees clockwise
        out = np.swapaxes(image, 0, 1)[:, ::-1]
    elif orientation == 7:  # transverse
        out = np.swapaxes(image, 0, 1)[::-1, ::-1]
    elif orientation == 8:  # rotate 90 degrees counter-clockwise
        out = np.swapaxes(image, 0, 1)[::-1]
    else:
        return image
    return np.ascontiguousarray(out)


def _to_uint8(image: np.ndarray, path: str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    if image.dtype in (np.float32, np.float64, np.float16):
        img = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    if image.dtype == np.int8:
        return (image.astype(np.int16) + 128).astype(np.uint8)
    if image.dtype == np.int16:
        return np.round((image.astype(np.float32) + 32768.0) * (255.0 / 65535.0)).astype(np.uint8)
    raise ImageError(f"{path}: unsupported pixel type {image.dtype}")


def _to_bgr(image: np.ndarray, path: str) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1|2|3|4)`` uint8 → ``(H, W, 3)`` uint8 BGR; alpha composited on black."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ImageError(f"{path}: unsupported image layout with shape {image.shape}")
    channels = image.shape[2]
    if channels in (2, 4):  # gray+alpha or BGRA: composite on black
        alpha = image[:, :, -1:].astype(np.float32) / 255.0
        color = np.round(image[:, :, :-1].astype(np.float32) * alpha).astype(np.uint8)
        image, channels = color, channels - 1
    if channels == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    if channels == 3:
        return np.ascontiguousarray(image)
    raise ImageError(f"{path}: unsupported number of channels ({channels})")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` ``uint8`` BGR, upright (EXIF orientation applied).

    Raises :class:`ImageError` (``"<path>: file not found"``, ``"<path>: is a directory"``,
    ``"<path>: empty file"``, ``"<path>: cannot decode image (corrupt or not an image)"``, ...).
    """
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise ImageError(f"{name}: file not found")
    if p.is_dir():
        raise ImageError(f"{name}: is a directory, not an image file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageError(f"{name}: cannot read file ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None or image.size == 0 or min(image.shape[:2]) == 0:
        raise ImageError(f"{name}: cannot decode image (corrupt or not an image)")
    image = _to_bgr(_to_uint8(image, name), name)
    return apply_exif_orientation(image, _exif_orientation(data))


def iter_image_paths(inputs: Iterable[str | os.PathLike] | str | os.PathLike,
                     problems: list[tuple[str, str]] | None = None) -> list[Path]:
    """Expand files and folders into a list of image paths.

    A folder contributes its files whose extension (any case) is in :data:`IMAGE_EXTENSIONS`, sorted by
    name, without recursing; a file is taken as given (whatever its extension; :func:`read_image` will
    complain if it is not an image). Duplicates are dropped, order is kept.

    A missing input (``"<path>: file not found"``) or a folder without image files is an
    :class:`ImageError`; when ``problems`` is a list, each is appended to it as ``(input, one-line reason)``
    instead and the other inputs are still expanded (what a batch command wants).
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[Path] = []
    seen: set[Path] = set()

    def problem(item, reason: str) -> None:
        if problems is None:
            raise ImageError(reason)
        problems.append((str(item), reason))

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                (c for c in p.iterdir() if c.suffix.lower() in IMAGE_EXTENSIONS and c.is_file()),
                key=lambda c: c.name,
            )
            if not found:
                problem(item, f"{item}: folder holds no image files ({', '.join(IMAGE_EXTENSIONS)}; "
                              "subfolders are not searched): give image files or a folder of them")
                continue
        elif p.exists():
            found = [p]
        else:
            problem(item, f"{item}: file not found")
            continue
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out
