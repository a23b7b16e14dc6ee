"""What one reconstructed photo becomes on disk, as ``(file name, bytes)`` makers: its JSON record, the pictures
(overlay, depth, PNCC; drawn at a bounded size), the meshes (PLY) and the textured assets (UV texture, OBJ + MTL,
GLB: :mod:`tf2dasl.texture.assets`). Writing them is :mod:`tf2dasl.io.outputs`' job (atomic, checked)."""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from ..geometry.camera import resize_points
from ..io.mesh import encode_ply, sample_vertex_colors
from ..io.outputs import encode_image, write_bytes
from ..reconstruct import Face
from ..render import draw
from ..texture.assets import TEXTURED_OUTPUTS, textured_files, textured_suffixes

#: Pictures (overlay, depth, PNCC) of larger images are drawn at this many pixels (aspect kept): a huge photo
#: does not make a huge PNG (nor the z-buffers and copies behind it).
PICTURE_MAX_PIXELS = 16_000_000
#: The picture outputs (``<stem>_<name>.png``) and mesh outputs (``<stem>_<face>.<ext>``) of a run; the textured
#: outputs (UV texture, textured OBJ, GLB; models with UV coordinates) are tf2dasl.texture.assets'.
PICTURES = ("overlay", "depth", "pncc")
MESHES = ("ply",)
TEXTURED = TEXTURED_OUTPUTS


def face_file_suffixes(outputs: Sequence[str]) -> list[str]:
    """What follows ``<stem>_<face>`` in the names of the per-face files of ``outputs`` (:func:`output_files`):
    ``.ply`` and the textured ones (:func:`tf2dasl.texture.assets.textured_suffixes`)."""
    return [".ply"] * ("ply" in outputs) + textured_suffixes(outputs)


def image_record(path: Path, image: np.ndarray, faces: Sequence[Face], size: tuple[int, int] | None = None,
                 reduction: int = 1) -> dict:
    """The per-image JSON record (docs/output_format.md): ``{"image", "width", "height", "faces": [...]}``;
    ``size`` ``(width, height)`` of the full image when ``image`` was decoded at ``1 / reduction`` of it (then
    ``"decode_reduction": reduction`` is added; the faces are in full-image pixels either way)."""
    h, w = image.shape[:2]
    w, h = size or (w, h)
    record = {"image": str(path), "width": int(w), "height": int(h), "faces": [f.to_json() for f in faces]}
    if reduction != 1:
        record["decode_reduction"] = int(reduction)
    return record


def resize_faces(faces: Sequence[Face], s: float) -> list[Face]:
    """Copies of ``faces`` in the pixel grid resized by ``s`` (:func:`~tf2dasl.geometry.camera.resize_points`: boxes, landmarks and the
    vertices if any; ``params`` are in the crop's frame and ``pose`` is unchanged)."""
    if s == 1.0:
        return list(faces)
    box = lambda b: resize_points(np.asarray(b, np.float32).reshape(2, 2), s).reshape(4)  # noqa: E731
    return [dataclasses.replace(f, bbox=box(f.bbox), roi_box=box(f.roi_box),
                                landmarks_3d=resize_points(f.landmarks_3d, s),
                                vertices=None if f.vertices is None else resize_points(f.vertices, s))
            for f in faces]


def picture_view(image: np.ndarray, faces: Sequence[Face], image_scale: float = 1.0,
                 max_pixels: int | None = None) -> tuple[np.ndarray, list[Face]]:
    """The image and faces to draw pictures from: ``image`` (whose pixels are the faces' pixels times
    ``image_scale``, e.g. ``1 / reduction``) resized to at most ``max_pixels`` (default
    :data:`PICTURE_MAX_PIXELS`; INTER_AREA), and the faces in its pixel grid."""
    max_pixels = PICTURE_MAX_PIXELS if max_pixels is None else max_pixels
    h, w = image.shape[:2]
    shrink = min(1.0, math.sqrt(max_pixels / float(h * w)))
    if shrink < 1.0:
        size = (max(1, int(w * shrink)), max(1, int(h * shrink)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        shrink = size[0] / w
    return image, resize_faces(faces, image_scale * shrink)


def output_files(stem: str, image: np.ndarray, faces: Sequence[Face], outputs: Sequence[str], mm,
                 image_scale: float = 1.0, texture_size: int = 512) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """``(file name, make its bytes)`` for the pictures (``overlay``, ``depth``, ``pncc``: ``<stem>_<name>.png``),
    meshes (``ply``: ``<stem>_<face>.ply``) and textured outputs (``uv_texture``, ``obj``, ``glb``:
    :func:`tf2dasl.texture.assets.textured_files`, ``texture_size`` texels square) asked for, in order; each file
    is encoded only when its maker is called, so one failed write does not stop the others and only one file is in memory. With a
    dense morphable model the faces carry their ``vertices`` (:meth:`Reconstructor.add_vertices`).

    ``image_scale``: ``image``'s pixel grid is the faces' one resized by it (``1 / reduction`` for an image
    decoded at a reduced size). Pictures are drawn at most :data:`PICTURE_MAX_PIXELS` (:func:`picture_view`);
    meshes keep the faces' coordinates and take their colours from ``image``."""
    tri = mm.triangles if mm.is_dense else None
    view = functools.lru_cache(maxsize=1)(lambda: picture_view(image, faces, image_scale))
    pictures = {"overlay": lambda: draw.overlay(*view(), tri)}
    if tri is not None:
        pictures["depth"] = lambda: draw.depth_image(*view(), tri)
        pictures["pncc"] = lambda: draw.pncc_image(*view(), tri, mm.ncc())
    for name in PICTURES:
        if name in outputs and name in pictures:
            png = f"{stem}_{name}.png"
            yield png, (lambda png=png, draw=pictures[name]: encode_image(png, draw()))
    if tri is None:
        return
    if "ply" in outputs:
        for i, face in enumerate(faces):
            yield f"{stem}_{i}.ply", functools.partial(_ply, face.vertices, tri, image, image_scale)
    yield from textured_files(stem, image, faces, mm, outputs, texture_size, image_scale)


def _ply(vertices: np.ndarray, triangles: np.ndarray, image: np.ndarray, image_scale: float) -> bytes:
    """One face's PLY: its vertices (the faces' pixels) coloured from ``image`` (their grid resized by ``image_scale``)."""
    return encode_ply(vertices, triangles, sample_vertex_colors(image, resize_points(vertices, image_scale)))


def write_outputs(out_dir: Path, stem: str, image: np.ndarray, faces: Sequence[Face], outputs: Sequence[str],
                  mm) -> list[Path]:
    """Write the pictures and meshes asked for (:func:`output_files`) into ``out_dir``, each atomically; the
    first that cannot be written raises :class:`~tf2dasl.io.outputs.OutputError`. (``reconstruct_paths`` writes
    through its run folder instead: manifest, per-file failures.)"""
    return [write_bytes(Path(out_dir) / name, make()) for name, make in output_files(stem, image, faces, outputs, mm)]
