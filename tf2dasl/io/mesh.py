"""Mesh writers (Wavefront OBJ with vertex colours, binary PLY; textured OBJ + MTL + PNG, binary glTF) and
per-vertex colour sampling.

The **textured** writers (:func:`write_textured_obj`, :func:`write_glb`) take the mesh in whatever frame the
caller chose (tf2dasl writes faces in the object frame of :mod:`tf2dasl.geometry.object_frame`: y up, the face
looking along +z) with triangles wound counter-clockwise seen from outside, per-vertex UVs (v up, OBJ's
convention) and a BGR texture; they write it unchanged. GLB files are built by ``trimesh`` (the container, the
accessors and the embedded PNG are its work, not ours).

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
import trimesh
from PIL import Image

from ..render import sample_bilinear, vertex_normals
from .outputs import encode_image, write_bytes

__all__ = ["encode_obj", "encode_ply", "write_obj", "write_ply", "encode_mtl", "encode_textured_obj", "write_textured_obj",
           "encode_glb", "write_glb", "sample_vertex_colors"]


def _mesh(vertices, triangles) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``vertices (N, 3)`` float64 and ``triangles (T, 3)`` int64 (0-based, in range)."""
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
    return v, t


def _prepare(vertices, triangles, flip_y: bool) -> tuple[np.ndarray, np.ndarray]:
    v, t = _mesh(vertices, triangles)
    if flip_y:
        v = v * np.array([1.0, -1.0, 1.0])
        t = t[:, [0, 2, 1]]
    return v, t


def _colors(colors, n: int) -> np.ndarray:
    c = np.asarray(colors)
    if c.shape != (n, 3):
        raise ValueError(f"colors must be (N, 3) = ({n}, 3), got {c.shape}")
    return c


def _colors_float(colors, n: int) -> np.ndarray:
    c = _colors(colors, n)
    if c.dtype == np.uint8:
        return c.astype(np.float64) / 255.0
    return np.clip(c.astype(np.float64), 0.0, 1.0)


def _colors_uint8(colors, n: int) -> np.ndarray:
    c = _colors(colors, n)
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


def _check_texture(texture) -> np.ndarray:
    tex = np.asarray(texture)
    if tex.ndim != 3 or tex.shape[2] != 3 or tex.dtype != np.uint8:
        raise ValueError(f"texture must be (H, W, 3) uint8 BGR, got {tex.shape} {tex.dtype}")
    return tex


def _textured_inputs(vertices, triangles, uv, texture, normals):
    """Checked ``(vertices, triangles, uv, normals)`` as float64/int64 (normals computed when ``None``)."""
    v, t = _mesh(vertices, triangles)
    uv = np.asarray(uv, np.float64)
    if uv.shape != (len(v), 2):
        raise ValueError(f"uv must be (N, 2) = ({len(v)}, 2), got {uv.shape}")
    if texture is not None:
        _check_texture(texture)
    if normals is None:
        normals = vertex_normals(v, t)
    n = np.asarray(normals, np.float64)
    if n.shape != v.shape:
        raise ValueError(f"normals must be (N, 3) like the vertices, got {n.shape}")
    return v, t, uv, n


#: the material name the textured OBJ and its MTL share
OBJ_MATERIAL = "face"


def encode_mtl(texture_name: str) -> bytes:
    """The MTL file of :func:`encode_textured_obj`: one matte material whose ``map_Kd`` is ``texture_name``
    (relative to the MTL: the files move together)."""
    return (f"# tf2dasl material\nnewmtl {OBJ_MATERIAL}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
            f"map_Kd {texture_name}\n").encode("ascii")


def encode_textured_obj(vertices, triangles, uv, normals=None, mtl_name: str = "mesh.mtl",
                        comments: tuple[str, ...] = ()) -> bytes:
    """A textured Wavefront OBJ as bytes (its material: :func:`encode_mtl`).

    ``mtllib <mtl_name>``, ``usemtl face``, one ``v x y z``, ``vt u v`` and ``vn x y z`` line per vertex (the
    same numbering for all three) and ``f a/a/a b/b/b c/c/c`` faces (1-based).

    Args:
        vertices: ``(N, 3)`` float, written as given.
        triangles: ``(T, 3)`` 0-based, counter-clockwise seen from outside (the normals' side).
        uv: ``(N, 2)`` in ``[0, 1]``, v up.
        normals: ``(N, 3)`` unit normals, or ``None`` to compute them from the triangles.
        mtl_name: the MTL file the OBJ refers to.
        comments: extra ``#`` header lines (e.g. the frame and the pose).
    """
    v, t, uv, n = _textured_inputs(vertices, triangles, uv, None, normals)
    material = OBJ_MATERIAL
    parts = [f"# tf2dasl mesh: {len(v)} vertices, {len(t)} faces; textured (vt, vn, {mtl_name})\n",
             *(f"# {c}\n" for c in comments),
             f"mtllib {mtl_name}\no face\n"]
    if len(v):
        parts += [("v %.6f %.6f %.6f\n" * len(v)) % tuple(v.ravel().tolist()),
                  ("vt %.6f %.6f\n" * len(v)) % tuple(uv.ravel().tolist()),
                  ("vn %.5f %.5f %.5f\n" * len(v)) % tuple(n.ravel().tolist())]
    parts.append(f"usemtl {material}\ns 1\n")
    if len(t):
        parts.append(("f %d/%d/%d %d/%d/%d %d/%d/%d\n" * len(t)) % tuple(np.repeat(t + 1, 3, axis=1).ravel().tolist()))
    return "".join(parts).encode("ascii")


def write_textured_obj(path: str | os.PathLike, vertices, triangles, uv, texture, normals=None,
                       comments: tuple[str, ...] = (), overwrite: bool = True) -> list[Path]:
    """Write ``NAME.obj`` + ``NAME.mtl`` (:func:`encode_textured_obj`) + the texture ``NAME.png``
    (``texture`` ``(S_h, S_w, 3)`` uint8 BGR) next to each other, each atomically; the PNG and MTL first, so an
    OBJ never names a missing file. Returns ``[obj, mtl, png]``."""
    path = Path(path)
    mtl, png = path.with_suffix(".mtl"), path.with_suffix(".png")
    _check_texture(texture)
    obj_bytes = encode_textured_obj(vertices, triangles, uv, normals, mtl.name, comments)
    written = [write_bytes(png, encode_image(png, texture), overwrite=overwrite),
               write_bytes(mtl, encode_mtl(png.name), overwrite=overwrite)]
    return [write_bytes(path, obj_bytes, overwrite=overwrite), written[1], written[0]]


def encode_glb(vertices, triangles, uv, texture, normals=None, node_matrix=None, node_name: str = "face",
               extras: dict | None = None) -> bytes:
    """A binary glTF 2.0 file (GLB) as bytes, with the texture embedded as a PNG, built by ``trimesh``.

    One scene, one node ``node_name`` holding one mesh (POSITION, NORMAL, TEXCOORD_0, indices) and one matte
    material (``baseColorTexture``, metallic 0, roughness 1). ``node_matrix`` ``(4, 4)`` becomes the node's
    transform (glTF requires it to be decomposable into translation, rotation and scale); ``extras`` (JSON
    values) are stored as the node's ``extras``.

    Args:
        vertices, triangles, uv, normals: as :func:`encode_textured_obj` (UVs v up; trimesh writes glTF's
            top-left origin).
        texture: ``(S_h, S_w, 3)`` uint8 BGR.
        node_matrix: ``(4, 4)`` node transform, or ``None`` for the identity.
        node_name: the node's (and mesh's) name.
        extras: JSON-serialisable dict for the node's ``extras``.
    """
    v, t, uv, n = _textured_inputs(vertices, triangles, uv, texture, normals)
    material = trimesh.visual.material.PBRMaterial(
        name=node_name, baseColorTexture=Image.fromarray(np.ascontiguousarray(np.asarray(texture)[:, :, ::-1])),
        metallicFactor=0.0, roughnessFactor=1.0)
    mesh = trimesh.Trimesh(vertices=v, faces=t, vertex_normals=n, process=False,
                           visual=trimesh.visual.TextureVisuals(uv=uv, material=material))
    scene = trimesh.Scene()
    scene.add_geometry(mesh, node_name=node_name, geom_name=node_name,
                       transform=None if node_matrix is None else np.asarray(node_matrix, np.float64),
                       metadata=dict(extras or {}))
    return trimesh.exchange.gltf.export_glb(scene, include_normals=True)


def write_glb(path: str | os.PathLike, vertices, triangles, uv, texture, normals=None, node_matrix=None,
              node_name: str = "face", extras: dict | None = None, overwrite: bool = True) -> Path:
    """Write :func:`encode_glb`'s GLB to ``path`` atomically. Returns the path."""
    return write_bytes(path, encode_glb(vertices, triangles, uv, texture, normals, node_matrix, node_name, extras),
                       overwrite=overwrite)


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
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"vertices must be (N, 2) or (N, 3), got {v.shape}")
    bgr = sample_bilinear(img, v[:, 0], v[:, 1])
    scale = 255.0 if img.dtype == np.uint8 else 1.0
    return (bgr[:, ::-1] / scale).astype(np.float32)
