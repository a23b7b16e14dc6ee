"""Mesh writers (Wavefront OBJ with vertex colours, binary PLY) and per-vertex colour sampling.

Conventions
-----------
* **vertices** ``(N, 3)`` float in **image pixels**: x right, y down, z = depth with larger z closer
  to the camera (see :mod:`tf2dasl.render`).
* **triangles** ``(T, 3)`` int, **0-based** (3DDFA's ``tri.pkl`` is ``(3, T)``: pass ``tri.T``).
* **Orientation in the written file** (``flip_y=True``, the default): image y points down, so the
  writers store ``(x, -y, z)`` — x right, y up, z towards the viewer, a right-handed frame in which
  the face opens upright and facing the default camera of MeshLab/Blender. Mirroring one axis
  reverses the orientation of every triangle, so the writers also store each face as
  ``(v0, v2, v1)``: the normals of the written mesh point to the same side of the surface as
  ``cross(v1 - v0, v2 - v0)`` of the input (outwards/towards the viewer for 3DDFA's mesh). This is
  what 3DDFA_V2's ``ser_to_obj`` does (it writes ``height - y`` and faces ``f i3 i2 i1``); we use
  ``-y`` (no image-height offset). With ``flip_y=False`` vertices and faces are written unchanged.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .outputs import write_bytes

__all__ = ["encode_obj", "encode_ply", "write_obj", "write_ply", "sample_vertex_colors"]


def _prepare(vertices, triangles, flip_y: bool) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(triangles)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (N, 3), got {v.shape}")
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"triangles must be (T, 3) (pass tri.T for 3DDFA's (3, T)), got {t.shape}")
    if t.size and not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"triangles must be integer, got {t.dtype}")
    t = t.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= len(v)):
        raise ValueError(f"triangle indices must be in [0, {len(v)}), got [{t.min()}, {t.max()}]")
    if flip_y:
        v = v * np.array([1.0, -1.0, 1.0])
        t = t[:, [0, 2, 1]]
    return v, t


def _colors_float(colors, n: int) -> np.ndarray:
    c = np.asarray(colors)
    if c.shape != (n, 3):
        raise ValueError(f"colors must be (N, 3) = ({n}, 3), got {c.shape}")
    if c.dtype == np.uint8:
        return c.astype(np.float64) / 255.0
    return np.clip(c.astype(np.float64), 0.0, 1.0)


def _colors_uint8(colors, n: int) -> np.ndarray:
    c = np.asarray(colors)
    if c.shape != (n, 3):
        raise ValueError(f"colors must be (N, 3) = ({n}, 3), got {c.shape}")
    if c.dtype == np.uint8:
        return c
    return np.clip(np.rint(c.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def encode_obj(vertices, triangles, colors=None, flip_y: bool = True) -> bytes:
    """A Wavefront OBJ as bytes: ``v x y z [r g b]`` lines then ``f i j k`` (1-based) lines.

    Args:
        vertices: ``(N, 3)`` image-pixel vertices (x right, y down, larger z closer).
        triangles: ``(T, 3)`` 0-based vertex indices.
        colors: ``(N, 3)`` **RGB**, float in ``[0, 1]`` (clipped) or uint8 (divided by 255), or
            ``None`` for plain ``v x y z`` lines. Colours are written as floats in ``[0, 1]``
            (the vertex-colour extension read by MeshLab, Blender and trimesh).
        flip_y: write ``(x, -y, z)`` and faces as ``(v0, v2, v1)`` so the mesh opens upright with
            unchanged outward normals (see module docstring); ``False`` writes the input as is.
    """
    v, t = _prepare(vertices, triangles, flip_y)
    n = len(v)
    if colors is None:
        vdata, vfmt = v, "v %.6f %.6f %.6f\n"
    else:
        vdata, vfmt = np.concatenate([v, _colors_float(colors, n)], axis=1), "v %.6f %.6f %.6f %.6f %.6f %.6f\n"
    parts = [f"# tf2dasl mesh: {n} vertices, {len(t)} faces; {'x, -y, z (y up)' if flip_y else 'x, y, z as given'}\n"]
    if n:
        parts.append((vfmt * n) % tuple(vdata.ravel().tolist()))
    if len(t):
        parts.append(("f %d %d %d\n" * len(t)) % tuple((t + 1).ravel().tolist()))
    return "".join(parts).encode("ascii")


def encode_ply(vertices, triangles, colors=None, flip_y: bool = True) -> bytes:
    """A binary little-endian PLY (``format binary_little_endian 1.0``) as bytes.

    Layout: ``element vertex N`` with ``float x, y, z`` (float32) and, with colours,
    ``uchar red, green, blue``; ``element face T`` with ``property list uchar int vertex_indices``
    (0-based, 3 per face). Records are packed (no padding).

    Args:
        vertices: ``(N, 3)`` image-pixel vertices.
        triangles: ``(T, 3)`` 0-based.
        colors: ``(N, 3)`` **RGB**, uint8 (written as is) or float in ``[0, 1]``
            (``round(255 * c)``, clipped), or ``None``.
        flip_y: as :func:`encode_obj` (``(x, -y, z)`` and faces ``(v0, v2, v1)``).
    """
    v, t = _prepare(vertices, triangles, flip_y)
    n = len(v)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vrec = np.empty(n, dtype=np.dtype(fields))
    vrec["x"], vrec["y"], vrec["z"] = v[:, 0], v[:, 1], v[:, 2]
    if colors is not None:
        c = _colors_uint8(colors, n)
        vrec["red"], vrec["green"], vrec["blue"] = c[:, 0], c[:, 1], c[:, 2]
    frec = np.empty(len(t), dtype=np.dtype([("n", "u1"), ("idx", "<i4", (3,))]))
    frec["n"] = 3
    frec["idx"] = t

    header = ["ply", "format binary_little_endian 1.0",
              f"comment tf2dasl mesh; {'x, -y, z (y up)' if flip_y else 'x, y, z as given'}",
              f"element vertex {n}", "property float x", "property float y", "property float z"]
    if colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(t)}", "property list uchar int vertex_indices", "end_header"]
    return ("\n".join(header) + "\n").encode("ascii") + vrec.tobytes() + frec.tobytes()


def write_obj(path: str | os.PathLike, vertices, triangles, colors=None, flip_y: bool = True,
              overwrite: bool = True) -> Path:
    """Write :func:`encode_obj`'s OBJ to ``path`` atomically (:mod:`tf2dasl.io.outputs`: a failure is an
    ``OutputError`` naming the file; ``overwrite=False`` refuses an existing ``path``). Returns the path."""
    return write_bytes(path, encode_obj(vertices, triangles, colors, flip_y), overwrite=overwrite)


def write_ply(path: str | os.PathLike, vertices, triangles, colors=None, flip_y: bool = True,
              overwrite: bool = True) -> Path:
    """Write :func:`encode_ply`'s PLY to ``path`` atomically (as :func:`write_obj`). Returns the path."""
    return write_bytes(path, encode_ply(vertices, triangles, colors, flip_y), overwrite=overwrite)


def sample_vertex_colors(image_bgr, vertices) -> np.ndarray:
    """Bilinearly sample the image at the vertices' ``(x, y)``: per-vertex **RGB** in ``[0, 1]``.

    Args:
        image_bgr: ``(H, W, 3)`` uint8 BGR (OpenCV order); ``(H, W)`` grey is accepted too, and a
            float image is taken as already scaled to ``[0, 1]``.
        vertices: ``(N, 2+)`` image pixels (x right, y down, pixel centres at integers); z ignored.

    Returns:
        ``(N, 3)`` float32 RGB in ``[0, 1]``. Coordinates outside the image are clamped to the
        border pixel centres (``x`` to ``[0, W-1]``, ``y`` to ``[0, H-1]``); non-finite ones too
        (NaN samples pixel ``(0, 0)``).
    """
    img = np.asarray(image_bgr)
    if img.ndim == 2:
        img = img[:, :, None].repeat(3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {img.shape}")
    h, w = img.shape[:2]
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"vertices must be (N, 2) or (N, 3), got {v.shape}")
    x = np.clip(np.nan_to_num(v[:, 0], nan=0.0), 0.0, w - 1)
    y = np.clip(np.nan_to_num(v[:, 1], nan=0.0), 0.0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(y).astype(np.int64), max(h - 2, 0))
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    def at(yy, xx):  # gather first, convert only the N samples
        return img[yy, xx].astype(np.float64)

    top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx
    bot = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx
    bgr = top * (1.0 - fy) + bot * fy
    scale = 255.0 if img.dtype == np.uint8 else 1.0
    return (bgr[:, ::-1] / scale).astype(np.float32)
