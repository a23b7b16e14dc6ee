"""Renders built on the rasteriser: depth maps, PNCC, the shaded (Gouraud) overlay and textured faces; vertex
normals. Conventions in :mod:`tf2dasl.render`'s docstring."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .raster import as_list, check_mesh, image_shape, raster_faces, raster_meshes


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def render_depth(image_or_shape, vertices_list: Sequence[np.ndarray], triangles,
                 cull_backfaces: bool = False) -> np.ndarray:
    """Depth map like 3DDFA_V2's ``depth`` output: nearer = brighter.

    Each face's z is normalised to ``[0, 1]`` over its own vertices (``(z - zmin) / (zmax - zmin)``,
    as 3DDFA_V2 does) and drawn as ``round(255 * z)``; several faces are composed with one shared
    z-buffer on the raw z, so a nearer face hides a farther one.

    Args:
        image_or_shape: an image (only its shape is used) or ``(H, W[, C])``.
        vertices_list: list of ``(N, 3)`` image-pixel vertices (or a single ``(N, 3)`` array).
        triangles: ``(T, 3)`` int, 0-based.
        cull_backfaces: see :func:`rasterize`.

    Returns:
        ``(H, W)`` uint8, 0 where no face is drawn (black background).
    """
    h, w = image_shape(image_or_shape)
    verts = as_list(vertices_list)
    out = np.zeros(h * w, np.uint8)
    if verts:
        pix, t_idx, _, z = raster_meshes(verts, triangles, h, w, cull_backfaces)
        # Depth is affine over each triangle, so the z-buffer's z is the interpolated depth.
        zs = [np.asarray(v, np.float64)[:, 2] for v in verts]
        zmin = np.array([np.nanmin(zi) for zi in zs])
        scale = 255.0 / np.maximum(np.array([np.nanmax(zi) for zi in zs]) - zmin, 1e-12)
        if len(verts) == 1:
            val = (z - zmin[0]) * scale[0]
        else:
            face = t_idx // len(np.asarray(triangles))
            val = (z - zmin[face]) * scale[face]
        out[pix] = _to_u8(val)
    return out.reshape(h, w)


def render_pncc(image_or_shape, vertices_list: Sequence[np.ndarray], triangles, ncc,
                cull_backfaces: bool = False) -> np.ndarray:
    """Projected Normalized Coordinate Code image (3DDFA's PNCC).

    Args:
        image_or_shape: an image (only its shape is used) or ``(H, W[, C])``.
        vertices_list: list of ``(N, 3)`` image-pixel vertices (or a single array).
        triangles: ``(T, 3)`` int, 0-based.
        ncc: ``(N, 3)`` per-vertex code in ``[0, 1]``, columns = normalised (x, y, z) of the mean
            shape, interpreted as **RGB**. 3DDFA's ``ncc_code.npy`` is ``(3, N)``: pass ``.T``; the
            same code is ``(u - u.min(0)) / (u.max(0) - u.min(0))`` for the mean shape ``u (N, 3)``.
        cull_backfaces: see :func:`rasterize`.

    Returns:
        ``(H, W, 3)`` uint8 **BGR** image: channel 2 (R) = ncc x, 1 (G) = ncc y, 0 (B) = ncc z,
        i.e. what 3DDFA_V2 writes to its PNCC file; ``round(255 * ncc)`` interpolated, 0 where empty.
    """
    h, w = image_shape(image_or_shape)
    ncc = np.asarray(ncc, np.float64)
    if ncc.ndim != 2 or ncc.shape[1] != 3:
        if ncc.ndim == 2 and ncc.shape[0] == 3:
            raise ValueError(f"ncc must be (N, 3), got {ncc.shape}; pass ncc_code.T")
        raise ValueError(f"ncc must be (N, 3), got {ncc.shape}")
    verts = as_list(vertices_list)
    out = np.zeros((h * w, 3), np.uint8)
    if verts:
        bgr = [ncc[:, 2] * 255.0, ncc[:, 1] * 255.0, ncc[:, 0] * 255.0]
        pix, values = raster_faces(verts, triangles, h, w, [bgr] * len(verts), cull_backfaces)
        for c in range(3):
            out[pix, c] = _to_u8(values[c])
    return out.reshape(h, w, 3)


def _normal_sums(vertices, triangles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-vertex sums of adjacent face normals ``cross(v1 - v0, v2 - v0)`` as three ``(N,)``."""
    v, t = check_mesh(vertices, triangles)
    n = len(v)
    vx, vy, vz = np.array(v, np.float64).T.copy()
    tt = np.ascontiguousarray(np.asarray(t).T, dtype=np.intp)
    i0, i1, i2 = tt
    ax, ay, az = vx[i0], vy[i0], vz[i0]
    e1x, e1y, e1z = vx[i1] - ax, vy[i1] - ay, vz[i1] - az
    e2x, e2y, e2z = vx[i2] - ax, vy[i2] - ay, vz[i2] - az
    # Face normals (area-weighted): cross(e1, e2), component by component on contiguous arrays.
    fn = (e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x)
    idx = tt.reshape(-1)  # corners 0, 1, 2 of every triangle
    return tuple(np.bincount(idx, weights=np.concatenate((f, f, f)), minlength=n) for f in fn)


def vertex_normals(vertices, triangles) -> np.ndarray:
    """Unit per-vertex normals ``(N, 3)`` float32: area-weighted sum of adjacent face normals.

    Face normal = ``cross(v1 - v0, v2 - v0)`` computed in the coordinates given. For 3DDFA's BFM
    mesh in image pixels (y down, larger z closer) this points **towards the camera** (+z) on the
    visible face. Vertices used by no non-degenerate triangle get ``(0, 0, 0)``.
    """
    sx, sy, sz = _normal_sums(vertices, triangles)
    norm = np.sqrt(sx * sx + sy * sy + sz * sz)
    inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    return np.stack([sx * inv, sy * inv, sz * inv], axis=1).astype(np.float32)


def render_shaded(image, vertices_list: Sequence[np.ndarray], triangles, alpha: float = 0.6,
                  color=(255, 255, 255), ambient: float = 0.3, diffuse: float = 0.6,
                  cull_backfaces: bool = False) -> np.ndarray:
    """Lambertian-shaded mesh blended over the photo (like 3DDFA_V2's ``render``).

    Gouraud shading with per-vertex normals (:func:`vertex_normals`) and a directional light from
    the camera (direction ``(0, 0, 1)``, i.e. +z): per-vertex intensity
    ``ambient + diffuse * |n . l|`` (two-sided, so either winding is lit the same), interpolated
    over the visible triangles and multiplied by ``color`` (BGR, 0-255). Covered pixels become
    ``(1 - alpha) * image + alpha * shade``; **pixels outside every mesh are returned unchanged**.
    Several faces are composed with one z-buffer.

    Args:
        image: ``(H, W, 3)`` uint8 BGR (not modified; a copy is returned).
        vertices_list: list of ``(N, 3)`` image-pixel vertices (or a single array).
        triangles: ``(T, 3)`` int, 0-based.
        alpha: opacity of the rendered mesh.
        color: mesh colour, BGR 0-255 (default white, as 3DDFA_V2).
        ambient, diffuse: light intensities (3DDFA_V2's Sim3DR uses 0.3 and 0.6).
        cull_backfaces: see :func:`rasterize`.

    Returns:
        ``(H, W, 3)`` uint8 BGR.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    h, w = img.shape[:2]
    out = np.array(img, copy=True, order="C")
    verts = as_list(vertices_list)
    if not verts:
        return out
    attrs = []
    for v in verts:
        sx, sy, sz = _normal_sums(v, triangles)
        norm = np.sqrt(sx * sx + sy * sy + sz * sz)
        nz = np.divide(np.abs(sz), norm, out=np.zeros_like(norm), where=norm > 0)  # |n . (0,0,1)|
        attrs.append([ambient + diffuse * nz])
    pix, (inten,) = raster_faces(verts, triangles, h, w, attrs, cull_backfaces)
    flat = out.reshape(h * w, 3)
    for c in range(3):
        chan = flat[:, c]
        chan[pix] = _to_u8((1.0 - alpha) * chan[pix] + (alpha * float(color[c])) * inten)
    return out


#: cv2.remap's maps are at most 32767 wide/tall: point lists are folded into rows of this many
_REMAP_ROW = 4096


def _remap_points(tex: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``tex (H, W, 3)`` uint8 at ``(M,)`` texel coordinates by OpenCV's ``remap`` (1/32 texel
    steps, clamped at the border texels): ``(M, 3)`` uint8."""
    m = len(x)
    rows = max(-(-m // _REMAP_ROW), 1)
    mx = np.zeros(rows * _REMAP_ROW, np.float32)
    my = np.zeros(rows * _REMAP_ROW, np.float32)
    mx[:m] = x
    my[:m] = y
    out = cv2.remap(np.ascontiguousarray(tex, np.uint8), mx.reshape(rows, -1), my.reshape(rows, -1), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:m]


def texture_colors(tri_index, bary, triangles, uv, texture) -> np.ndarray:
    """The texture's colours at covered pixels of a raster (:func:`rasterize_sparse`): ``tri_index (M,)`` into
    ``triangles``, ``bary`` their barycentrics (``(M, 3)`` or three ``(M,)``); UVs ``(N, 2)`` (v up) interpolated,
    ``texture (S_h, S_w, 3)`` uint8 looked up bilinearly (:func:`_remap_points`). Returns ``(M, 3)`` uint8."""
    l0, l1, l2 = (bary[:, 0], bary[:, 1], bary[:, 2]) if isinstance(bary, np.ndarray) and bary.ndim == 2 else bary
    uv = np.asarray(uv, np.float64)
    tt = np.asarray(triangles).T
    c0, c1, c2 = tt[0][tri_index], tt[1][tri_index], tt[2][tri_index]
    u = l0 * uv[c0, 0] + l1 * uv[c1, 0] + l2 * uv[c2, 0]
    v = l0 * uv[c0, 1] + l1 * uv[c1, 1] + l2 * uv[c2, 1]
    th, tw = texture.shape[:2]
    return _remap_points(texture, u * tw - 0.5, (1.0 - v) * th - 0.5)


def render_textured(image, vertices_list: Sequence[np.ndarray], triangles, uv, textures, alpha: float = 1.0,
                    cull_backfaces: bool = False, return_mask: bool = False):
    """Texture-mapped mesh over the photo: UVs interpolated over the visible triangles, texture looked up
    bilinearly (no lighting: the texture carries it).

    Args:
        image: ``(H, W, 3)`` uint8 BGR (not modified; a copy is returned).
        vertices_list: list of ``(N, 3)`` image-pixel vertices (or a single array).
        triangles: ``(T, 3)`` int, 0-based, shared by the faces.
        uv: ``(N, 2)`` texture coordinates in ``[0, 1]``, v up (see the module docstring), shared by the faces.
        textures: one ``(S_h, S_w, 3)`` uint8 BGR texture for every face, or a list with one per face.
        alpha: opacity of the rendered mesh.
        cull_backfaces: see :func:`rasterize`.
        return_mask: also return the ``(H, W)`` bool mask of the covered pixels.

    Returns:
        ``(H, W, 3)`` uint8 BGR (pixels outside every mesh unchanged), and the mask when ``return_mask``.
        The lookup is OpenCV's bilinear ``remap`` (texel positions in 1/32 steps, clamped to the border texels;
        :func:`uv_to_texel`'s addressing), within one grey level of :func:`sample_bilinear`.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    h, w = img.shape[:2]
    out = np.array(img, copy=True, order="C")
    mask = np.zeros(h * w, bool)
    verts = as_list(vertices_list)
    texs = [textures] if isinstance(textures, np.ndarray) and textures.ndim == 3 else list(textures)
    if len(texs) == 1:
        texs = texs * len(verts)
    if len(texs) != len(verts):
        raise ValueError(f"need one texture or one per face ({len(verts)}), got {len(texs)}")
    uv = np.asarray(uv, np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv must be (N, 2), got {uv.shape}")
    if verts:
        tri = np.asarray(triangles)
        pix, t_idx, bary, _ = raster_meshes(verts, tri, h, w, cull_backfaces)
        colors = np.empty((len(pix), 3), np.uint8)
        face = t_idx // len(tri) if len(verts) > 1 else None
        for f, tex in enumerate(texs):
            sel = slice(None) if face is None else np.flatnonzero(face == f)
            colors[sel] = texture_colors(t_idx[sel] % len(tri), [b[sel] for b in bary], tri, uv, tex)
        flat = out.reshape(h * w, 3)
        flat[pix] = colors if alpha == 1.0 else _to_u8((1.0 - alpha) * flat[pix] + alpha * colors)
        mask[pix] = True
    return (out, mask.reshape(h, w)) if return_mask else out
