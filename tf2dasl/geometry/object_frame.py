"""The face's own frame (pose removed) for mesh files, and the pose that places it in the photo (numpy).

Frames
------
* **object frame** ``(B, N, 3)``: the fitted shape without its pose,
  ``S = u + W_shp a_shp + W_exp a_exp`` (3DDFA's BFM coordinates), moved so that the origin is the centre of
  the *mean* shape's bounding box (a fixed point inside the head, the same for every face) and multiplied by
  :data:`OBJECT_SCALE`. Axes: **x** to the face's left (image right in a frontal photo), **y up**, **z out of
  the face** (the face looks along +z); right-handed. The unit is metric-free: weak perspective fixes no
  absolute size, so 1 unit is only "about 10 cm of an average face" (the mean face is ~1.55 units wide and
  ~1.8 tall). Meshes written by :mod:`tf2dasl.io.mesh` (OBJ, GLB) use this frame.
* **photo frame** ``(B, N, 3)``: image pixels with y negated, ``(x, -y, z)`` — x right, y up, z towards the
  camera, the photo's top-left pixel centre at the origin: the frame the untextured OBJ/PLY writers use.
* :func:`pose_matrices` gives the 4x4 affine map object frame → photo frame of each face (3DDFA's weak
  perspective ``[s R | t]`` composed with the crop and roi scaling). It is exactly affine but not always a
  similarity (the network's 3x3 block is not constrained to ``s R``): :func:`similarity` gives its nearest
  rotation, uniform scale and translation (what a glTF node may hold).
"""
from __future__ import annotations

import numpy as np

#: object-frame units per BFM unit (BFM coordinates are micrometre-like; the fit is not metric).
OBJECT_SCALE = 1e-5
#: photo frame = image pixels times this (y negated).
PHOTO_FLIP = np.array([1.0, -1.0, 1.0])


def object_origin(mm) -> np.ndarray:
    """``(3,)`` the centre of the mean shape's bounding box, in BFM units (the object frame's origin)."""
    mm.require_dense()
    u = mm.u.reshape(-1, 3).astype(np.float64)
    return (u.min(axis=0) + u.max(axis=0)) / 2.0


def object_vertices(mm, params: np.ndarray) -> np.ndarray:
    """Raw params ``(B, 62)`` → object-frame vertices ``(B, N, 3)`` float32 (pose ignored)."""
    shape = mm.shape_offsets(np.asarray(params, np.float32).reshape(-1, np.shape(params)[-1]), dense=True)
    return ((shape - object_origin(mm)) * OBJECT_SCALE).astype(np.float32)


def pose_matrices(object_verts: np.ndarray, image_verts: np.ndarray) -> np.ndarray:
    """``(B, 4, 4)`` float64 affine maps with ``photo = M @ [object; 1]`` for each face.

    Solved by least squares from the same faces' vertices in both frames: object frame ``(B, N, 3)`` and image
    pixels ``(B, N, 3)`` (the reconstructor's ``face.vertices``). The map between them is affine by
    construction, so the fit is exact up to float32 rounding; doing it this way needs no knowledge of the crop
    convention the vertices were made with."""
    obj = np.asarray(object_verts, np.float64).reshape(-1, *np.shape(object_verts)[-2:])
    img = np.asarray(image_verts, np.float64).reshape(obj.shape) * PHOTO_FLIP
    out = np.zeros((len(obj), 4, 4))
    out[:, 3, 3] = 1.0
    for b in range(len(obj)):
        c_obj, c_img = obj[b].mean(0), img[b].mean(0)  # centred: better conditioned
        A, *_ = np.linalg.lstsq(obj[b] - c_obj, img[b] - c_img, rcond=None)
        out[b, :3, :3] = A.T
        out[b, :3, 3] = c_img - A.T @ c_obj
    return out


def apply_pose(matrices: np.ndarray, object_verts: np.ndarray) -> np.ndarray:
    """Object-frame vertices ``(B, N, 3)`` through :func:`pose_matrices` ``(B, 4, 4)`` → **image pixels**
    ``(B, N, 3)`` float32 (x right, y down, larger z nearer), ready for :mod:`tf2dasl.render`."""
    M = np.asarray(matrices, np.float64).reshape(-1, 4, 4)
    obj = np.asarray(object_verts, np.float64).reshape(len(M), -1, 3)
    photo = obj @ np.transpose(M[:, :3, :3], (0, 2, 1)) + M[:, None, :3, 3]
    return (photo * PHOTO_FLIP).astype(np.float32)


def similarity(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The nearest similarity to one affine ``(4, 4)``: ``(translation (3,), rotation (3, 3), scale)``.

    Rotation from the polar decomposition of the 3x3 block (SVD, determinant +1), scale the mean singular
    value; ``translation`` is the matrix's own."""
    A = np.asarray(matrix, np.float64)[:3, :3]
    U, sv, Vt = np.linalg.svd(A)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return np.asarray(matrix, np.float64)[:3, 3].copy(), U @ D @ Vt, float(sv.mean())
