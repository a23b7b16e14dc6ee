"""Reading images robustly: always ``(H, W, 3)`` ``uint8`` **BGR** (OpenCV order), or a clear error.

* decoding is OpenCV's (``cv2.imdecode`` of the file's bytes with ``IMREAD_UNCHANGED``, so paths with
  any characters work and nothing is converted behind our back);
* the EXIF orientation tag is honoured (``IMREAD_UNCHANGED`` ignores it; we read the tag with Pillow
  and apply the rotation/flip ourselves), so a phone photo comes out upright as a viewer shows it;
* grayscale becomes 3 equal channels, 16-bit becomes 8-bit (``round(v * 255 / 65535)``), float images
  are taken as ``[0, 1]``, and an alpha channel is dropped after compositing on black;
* memory is bounded (:func:`decode_image`): the size is read from the file's header before decoding; above
  ``max_pixels`` a JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling, OpenCV's
  ``IMREAD_REDUCED_COLOR_*``: the full image never exists in memory) and any other image is refused;
* every failure is an :class:`ImageError` whose message is one line ``"<path>: what is wrong"``.
"""
from __future__ import annotations

import io
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from PIL import Image

from ..errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")

_EXIF_ORIENTATION_TAG = 0x0112
#: ``tf2dasl reconstruct --max-pixels``' default: larger images are decoded at a reduced size (JPEG) or refused
#: (other formats). 24 MP (a 6000x4000 photo) is 72 MB of BGR pixels; a 20000x20000 JPEG is decoded at 1/8
#: (2500x2500). TensorFlow alone takes about 750 MB, so a run stays under 1 GB (benchmarks/huge_image.py).
DEFAULT_MAX_PIXELS = 24_000_000
#: JPEG reductions OpenCV decodes directly (libjpeg's scaled IDCT), smallest first.
_REDUCED_FLAGS = ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8))
#: Pillow format names of JPEG files (MPO: the multi-picture JPEGs of many cameras).
_JPEG_FORMATS = ("JPEG", "MPO")
#: Pillow's decompression-bomb limit is lifted while a header is read (we check the size against max_pixels).
_PIL_LIMIT_LOCK = threading.Lock()


class ImageError(UserError):
    """An image that cannot be used; the message is one line naming the file and what is wrong."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says: ``width``/``height`` as stored (before EXIF orientation), Pillow's
    ``format`` name and the EXIF ``orientation`` (1..8)."""

    width: int
    height: int
    format: str
    orientation: int = 1

    @property
    def upright_size(self) -> tuple[int, int]:
        """``(width, height)`` as a viewer shows the image (EXIF orientations 5-8 swap them)."""
        return (self.height, self.width) if self.orientation >= 5 else (self.width, self.height)


def read_header(data: bytes) -> ImageHeader | None:
    """The header of the encoded image ``data`` (Pillow reads the header only: no pixels are decoded), or None
    when Pillow does not know the format or the header is broken."""
    try:
        with _PIL_LIMIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # a 20000x20000 header is not a bomb yet
            try:
                with Image.open(io.BytesIO(data)) as im:
                    width, height, fmt = int(im.size[0]), int(im.size[1]), str(im.format or "")
                    try:
                        if fmt == "PNG":  # PNG's getexif() decodes the whole image to look past IDAT: read the
                            exif = Image.Exif()  # eXIf chunk the header pass found, if any
                            if im.info.get("exif"):
                                exif.load(im.info["exif"])
                        else:
                            exif = im.getexif()
                        orientation = int(exif.get(_EXIF_ORIENTATION_TAG, 1))
                    except Exception:  # a broken EXIF block: keep the pixels as stored
                        orientation = 1
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except Exception:  # no Pillow plugin for the format, a broken header, ...
        return None
    return ImageHeader(width, height, fmt, orientation if 1 <= orientation <= 8 else 1)


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


@dataclass
class DecodedImage:
    """An image as decoded by :func:`decode_image`: ``image`` ``(h, w, 3)`` uint8 BGR upright; ``width`` and
    ``height`` of the full image (upright); ``reduction`` 1, 2, 4 or 8: ``image`` is the full image decoded at
    ``1 / reduction`` of its size (pixel ``i`` of ``image`` covers full pixels ``[i*r, (i+1)*r)``)."""

    image: np.ndarray
    width: int
    height: int
    reduction: int = 1


def _too_large(name: str, width: int, height: int, max_pixels: int, why: str = "") -> ImageError:
    return ImageError(f"{name}: {width}x{height} pixels is more than --max-pixels {max_pixels:,}{why}; resize "
                      "the image, or raise --max-pixels (decoding takes about 3 bytes per pixel)")


def decode_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS, reduce: bool = True
                 ) -> DecodedImage:
    """Read an image file as ``(H, W, 3)`` ``uint8`` BGR, upright (EXIF orientation applied), in bounded memory.

    The size is read from the header first (:func:`read_header`). Above ``max_pixels`` (default
    :data:`DEFAULT_MAX_PIXELS`; None: no limit) a JPEG
    is decoded at the smallest of 1/2, 1/4, 1/8 that fits when ``reduce``; any other image, or a JPEG that
    does not fit even at 1/8, is an :class:`ImageError` of one line naming its size and the limit, raised
    before any pixel is decoded. Other failures: ``"<path>: file not found"``, ``"<path>: is a directory"``,
    ``"<path>: empty file"``, ``"<path>: cannot decode image (corrupt or not an image)"``, ...
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
    return decode_image_bytes(data, name, max_pixels, reduce)


def decode_image_bytes(data: bytes, name: str, max_pixels: int | None = None, reduce: bool = True) -> DecodedImage:
    """:func:`decode_image` of a file's bytes already read (e.g. through Apache Beam's FileSystems); ``name``
    names the file in the one-line errors."""
    if not data:
        raise ImageError(f"{name}: empty file")
    header = read_header(data)
    flags, reduction = cv2.IMREAD_UNCHANGED, 1
    if header is not None and max_pixels is not None and header.width * header.height > max_pixels:
        w, h = header.upright_size
        if not reduce or header.format not in _JPEG_FORMATS:
            raise _too_large(name, w, h, max_pixels)
        fits = [(r, f) for r, f in _REDUCED_FLAGS if -(-w // r) * -(-h // r) <= max_pixels]
        if not fits:
            raise _too_large(name, w, h, max_pixels, " even decoded at 1/8")
        reduction, flags = fits[0][0], fits[0][1] | cv2.IMREAD_IGNORE_ORIENTATION  # we apply EXIF ourselves
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        image = None
    del data
    if image is None or image.size == 0 or min(image.shape[:2]) == 0:
        raise ImageError(f"{name}: cannot decode image (corrupt or not an image)")
    if header is None and max_pixels is not None and image.shape[0] * image.shape[1] > max_pixels:
        raise _too_large(name, image.shape[1], image.shape[0], max_pixels)  # a format Pillow cannot read
    image = _to_bgr(_to_uint8(image, name), name)
    image = apply_exif_orientation(image, header.orientation if header else 1)
    if header is not None:
        width, height = header.upright_size
    else:
        height, width = image.shape[:2]
    return DecodedImage(image, int(width), int(height), reduction)


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` ``uint8`` BGR, upright (EXIF orientation applied), at full size.

    ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`, the bound every command shares; None: no limit) refuses
    larger images before decoding them (:func:`decode_image`, which can also decode large JPEGs at a reduced
    size). Raises :class:`ImageError` (one line naming the file).
    """
    return decode_image(path, max_pixels, reduce=False).image


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be opened (the system's words: a symbolic link loop, a dangling link), or None."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def iter_image_paths(inputs: Iterable[str | os.PathLike] | str | os.PathLike,
                     problems: list[tuple[str, str]] | None = None) -> list[Path]:
    """Expand files and folders into a list of image paths.

    A folder contributes its files whose extension (any case) is in :data:`IMAGE_EXTENSIONS`, sorted by
    name, without recursing; a file is taken as given (whatever its extension; :func:`read_image` will
    complain if it is not an image). Duplicates are dropped, order is kept.

    A missing input (``"<path>: file not found"``), a folder without image files, or an image name in a folder
    that cannot be opened (a symbolic link loop or a dangling link: ``"<path>: cannot be read (Too many levels
    of symbolic links)"``) is an
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
            named = sorted((c for c in p.iterdir() if c.suffix.lower() in IMAGE_EXTENSIONS), key=lambda c: c.name)
            found = []
            for c in named:
                why = _unreadable(c)
                if why:  # a symbolic link loop, a dangling link: named like any unreadable input
                    problem(c, f"{c}: cannot be read ({why})")
                elif c.is_file():
                    found.append(c)
            if not named:
                problem(item, f"{item}: folder holds no image files ({', '.join(IMAGE_EXTENSIONS)}; "
                              "subfolders are not searched): give image files or a folder of them")
                continue
        elif p.exists():
            found = [p]
        else:
            why = _unreadable(p)
            problem(item, f"{item}: cannot be read ({why})" if why and os.path.islink(p) else f"{item}: file not found")
            continue
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out
