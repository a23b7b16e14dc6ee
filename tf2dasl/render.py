"""Vectorised numpy z-buffer rasteriser for dense face meshes (depth, PNCC, shaded and textured renders).

Conventions
-----------
* **vertices** ``(N, 3)`` float, in **image pixels**: ``x`` right, ``y`` down, 0-based with pixel
  ``(col, row)`` centred at integer coordinates ``(x, y) = (col, row)``; ``z`` is depth with
  **larger z = closer to the camera** (as 3DDFA_V2's image-pixel vertices).
* **triangles** ``(T, 3)`` int, 0-based vertex indices (3DDFA's ``tri.pkl`` is ``(3, T)``: pass
  ``tri.T``).
* **images** ``(H, W, 3)`` uint8 in OpenCV **BGR** order.
* A pixel is covered by a triangle when its centre lies inside or on the triangle (a tiny tolerance
  is used, so a centre on an edge shared by two triangles belongs to both and the z-buffer picks
  one). Orthographic projection: the screen position of a vertex is its ``(x, y)``.
* **Winding / back faces.** A triangle's *screen signed area* is
  ``(x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)`` in image pixels (y down). With the BFM mesh
  of 3DDFA (``tri.pkl``) placed in image pixels, front-facing triangles have **positive** signed
  area, which is also when the normal ``cross(v1 - v0, v2 - v0)`` has ``z > 0`` (points at the
  camera). By default nothing is culled (the z-buffer alone decides visibility, as 3DDFA_V2's
  Sim3DR does), so meshes of either winding render; ``cull_backfaces=True`` drops triangles whose
  signed area is ``<= 0`` (faster, and correct for the 3DDFA winding). Degenerate triangles (zero
  area) never cover a pixel.

Algorithm (numpy only, no per-triangle Python loop): triangles are processed in chunks of
``_CHUNK``; each gets its pixel-centre bounding box clipped to the mesh's region of the image and
affine forms of its barycentrics and depth over that box. Boxes of at most 2x2 pixel centres
(~90 % of a dense face mesh, whose triangles are ~1 px) are grouped by shape and tested against a
fixed window with broadcasting; larger boxes enumerate their (triangle, pixel) pairs with
``np.repeat``. The z-buffer is a ``np.maximum.at`` over the covered candidates followed by an
equality test that picks one winner per pixel. Renders interpolate per-vertex attributes with the
winners' barycentrics (Gouraud), and several faces are composed in one z-buffer. Textured renders interpolate
the vertices' UV coordinates the same way (affine interpolation: exact for orthographic projection, so no
perspective correction is needed) and look the texture up bilinearly (:func:`sample_bilinear`).

Textures: ``(S_h, S_w, 3)`` uint8 BGR images addressed by UV coordinates ``(u, v)`` in ``[0, 1]`` with **v up**
(OBJ/OpenGL convention): texel ``(col, row)`` has its centre at ``u = (col + 0.5) / S_w``,
``v = 1 - (row + 0.5) / S_h`` (:func:`uv_to_texel`).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

__all__ = [
    "rasterize",
    "rasterize_sparse",
    "render_depth",
    "render_pncc",
    "render_shaded",
    "render_textured",
    "sample_bilinear",
    "uv_to_texel",
    "vertex_normals",
]

# Inside test tolerance on barycentric coordinates (pixel centres exactly on an edge are inside).
_BARY_EPS = 1e-7
# Triangles per chunk: temporaries stay ~100-250 kB (cache-resident, recycled by the allocator).
_CHUNK = 16384


# Bounding boxes of up to _WIN x _WIN pixel centres are rasterised with fixed windows (pass 1);
# 2 is fastest for a 300 px face (3 helps slightly for meshes with 2-3 px triangles).
_WIN = 2


def _windows(k: int, rw: int):
    """Per box shape code ``(w - 1) + k (h - 1)``: float offsets ``dx``, ``dy`` as ``(m, 1)`` columns
    (``None`` when the box is one pixel wide/tall) and the flat offsets ``dy * rw + dx``."""
    out = []
    for code in range(k * k):
        bw, bh = code % k + 1, code // k + 1
        dy, dx = np.divmod(np.arange(bw * bh), bw)
        out.append((dx[:, None].astype(np.float64) if bw > 1 else None,
                    dy[:, None].astype(np.float64) if bh > 1 else None,
                    (dy * rw + dx)[:, None].astype(np.int64)))
    return out


# --------------------------------------------------------------------------------------------------
# core
# --------------------------------------------------------------------------------------------------
def _check_mesh(vertices, triangles) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices)
    t = np.asarray(triangles)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (N, 3), got {v.shape}")
    if t.ndim != 2 or t.shape[1] != 3:
        if t.ndim == 2 and t.shape[0] == 3 and t.shape[1] != 3:
            raise ValueError(f"triangles must be (T, 3), got {t.shape}; pass tri.T for 3DDFA's (3, T)")
        raise ValueError(f"triangles must be (T, 3), got {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"triangles must be integer, got {t.dtype}")
    if t.size and (t.min() < 0 or t.max() >= len(v)):
        raise ValueError(f"triangle indices must be in [0, {len(v)}), got [{t.min()}, {t.max()}]")
    return v, t


def _raster_chunks(vx, vy, vz, tt, rw, rh, zbuf, cull_backfaces, chunk):
    """Candidate pixels of all triangles, chunk by chunk; updates ``zbuf`` (max z) in place.

    Works in region-local pixel coordinates (``vx``, ``vy`` already shifted; region ``rw x rh``).
    Returns a list of ``(pix, tri, l1, l2, z)`` tuples, one entry per covered (triangle, pixel
    centre) pair: region-flat pixel index, triangle index, barycentrics of vertices 1 and 2, depth.
    """
    xhi, yhi = float(rw - 1), float(rh - 1)
    windows = _windows(_WIN, rw)
    parts = []
    for s in range(0, tt.shape[1], chunk):
        i0, i1, i2 = tt[0, s:s + chunk], tt[1, s:s + chunk], tt[2, s:s + chunk]
        x0, x1, x2 = vx[i0], vx[i1], vx[i2]
        y0, y1, y2 = vy[i0], vy[i1], vy[i2]
        # Pixel-centre bounding boxes clipped to the region (NaN compares False: dropped below).
        xmin = np.ceil(np.maximum(np.minimum(np.minimum(x0, x1), x2), 0.0))
        xmax = np.floor(np.minimum(np.maximum(np.maximum(x0, x1), x2), xhi))
        ymin = np.ceil(np.maximum(np.minimum(np.minimum(y0, y1), y2), 0.0))
        ymax = np.floor(np.minimum(np.maximum(np.maximum(y0, y1), y2), yhi))
        e1x = x1 - x0
        e1y = y1 - y0
        e2x = x2 - x0
        e2y = y2 - y0
        area = e1x * e2y - e2x * e1y  # screen signed area (x2)
        keep = (xmin <= xmax) & (ymin <= ymax)
        keep &= (area > 0) if cull_backfaces else (area != 0)
        keep &= np.isfinite(area)
        ids = np.flatnonzero(keep)
        if ids.size == 0:
            continue
        # Affine forms over the bounding box, in offsets (dx, dy) from its corner (xmin, ymin):
        #   l1 = c1 + a1 dx + b1 dy,  l2 = c2 + a2 dx + b2 dy,  z = cz + az dx + bz dy.
        inv = 1.0 / area[ids]
        a1 = e2y[ids] * inv
        b1 = e2x[ids] * -inv
        a2 = e1y[ids] * -inv
        b2 = e1x[ids] * inv
        bx0 = xmin[ids]
        by0 = ymin[ids]
        cx = bx0 - x0[ids]
        cy = by0 - y0[ids]
        c1 = a1 * cx + b1 * cy
        c2 = a2 * cx + b2 * cy
        za = vz[i0[ids]]
        dz1 = vz[i1[ids]] - za
        dz2 = vz[i2[ids]] - za
        az = dz1 * a1 + dz2 * a2
        bz = dz1 * b1 + dz2 * b2
        cz = za + dz1 * c1 + dz2 * c2
        bw = xmax[ids] - bx0  # box width - 1
        bh = ymax[ids] - by0
        pix0 = (by0 * rw + bx0).astype(np.int64)
        small = (bw < _WIN) & (bh < _WIN)
        # Box shape code (w - 1) + _WIN (h - 1) for boxes of up to _WIN x _WIN pixel centres, else -1.
        gcode = np.where(small, bw + _WIN * bh, -1.0).astype(np.int8)

        # Pass 1: small boxes (nearly all triangles of a dense mesh), grouped by box shape so that
        # each group has a fixed window of m = w * h pixels. Arrays are laid out (m, n): the inner
        # loops run over contiguous triangles, and no per-candidate gathers are needed.
        for code, (wx, wy, woff) in enumerate(windows):
            q = np.flatnonzero(gcode == code)
            if q.size == 0:
                continue
            L1, L2, Z = c1[q], c2[q], cz[q]
            P = pix0[q]
            if wx is not None:  # box more than one pixel wide
                L1 = L1 + a1[q] * wx
                L2 = L2 + a2[q] * wx
                Z = Z + az[q] * wx
            if wy is not None:  # box more than one pixel tall
                L1 = L1 + b1[q] * wy
                L2 = L2 + b2[q] * wy
                Z = Z + bz[q] * wy
            if code:
                P = P + woff
            inside = (L1 >= -_BARY_EPS) & (L2 >= -_BARY_EPS) & (L1 + L2 <= 1.0 + _BARY_EPS)
            fi = np.flatnonzero(inside)  # flat (window pixel, triangle) indices
            if fi.size == 0:
                continue
            ti = fi if code == 0 else fi % q.size
            z = Z.reshape(-1).take(fi)
            pix = P.reshape(-1).take(fi)
            np.maximum.at(zbuf, pix, z)
            parts.append((pix, ids.take(q.take(ti)) + s, L1.reshape(-1).take(fi),
                          L2.reshape(-1).take(fi), z))

        # Pass 2: larger boxes, every (triangle, pixel) pair enumerated with np.repeat.
        q = np.flatnonzero(~small)
        if q.size:
            bwq = bw[q].astype(np.int64) + 1
            counts = (bh[q].astype(np.int64) + 1) * bwq
            k = np.repeat(q, counts)
            local = np.arange(k.size) - np.repeat(np.cumsum(counts) - counts, counts)
            bwk = np.repeat(bwq, counts)
            dyi = local // bwk
            dxi = local - dyi * bwk
            dx = dxi.astype(np.float64)
            dy = dyi.astype(np.float64)
            l1 = c1[k] + a1[k] * dx + b1[k] * dy
            l2 = c2[k] + a2[k] * dx + b2[k] * dy
            sel = np.flatnonzero((l1 >= -_BARY_EPS) & (l2 >= -_BARY_EPS) & (l1 + l2 <= 1.0 + _BARY_EPS))
            if sel.size:
                k = k[sel]
                dx = dx[sel]
                dy = dy[sel]
                l1 = l1[sel]
                l2 = l2[sel]
                z = cz[k] + az[k] * dx + bz[k] * dy
                pix = pix0[k] + dyi[sel] * rw + dxi[sel]
                np.maximum.at(zbuf, pix, z)
                parts.append((pix, ids[k] + s, l1, l2, z))
    return parts


def _raster_compact(vertices, triangles, height: int, width: int, cull_backfaces: bool = False,
                    chunk: int = _CHUNK):
    """Rasterise and return only the covered pixels.

    Returns ``(pix, tri, (l0, l1, l2), z)``: flat pixel indices ``row * width + col`` (int64,
    unique, ascending), winning triangle index (int64, into ``triangles``), the barycentric weights
    of that triangle's three vertices at the pixel centre (three ``(M,)`` float64 arrays,
    non-negative, summing to 1), and the interpolated depth ``(M,)`` float64.

    Triangles are processed in chunks so that every temporary stays small (cache-resident and
    recycled by the allocator instead of page-faulted afresh), and the z-buffer covers only the
    mesh's bounding box inside the image.
    """
    v, t = _check_mesh(vertices, triangles)
    height, width = int(height), int(width)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), (np.zeros(0),) * 3, np.zeros(0))
    if len(t) == 0 or len(v) == 0 or height <= 0 or width <= 0:
        return empty

    vx, vy, vz = np.array(v, np.float64).T.copy()
    bad_z = ~np.isfinite(vz)
    if bad_z.any():  # triangles touching a vertex with non-finite depth are dropped
        vx[bad_z] = np.nan
    # Region of the image the mesh can touch (pixel centres), from finite vertices.
    fin = np.isfinite(vx) & np.isfinite(vy)
    if not fin.any():
        return empty
    rx0 = int(max(np.ceil(min(vx[fin].min(), width)), 0))
    rx1 = int(min(np.floor(max(vx[fin].max(), -1.0)), width - 1))
    ry0 = int(max(np.ceil(min(vy[fin].min(), height)), 0))
    ry1 = int(min(np.floor(max(vy[fin].max(), -1.0)), height - 1))
    if rx0 > rx1 or ry0 > ry1:
        return empty
    rw, rh = rx1 - rx0 + 1, ry1 - ry0 + 1
    # Shift to region-local pixel coordinates (pixel centres at integers 0..rw-1, 0..rh-1).
    vx -= rx0
    vy -= ry0
    tt = np.ascontiguousarray(np.asarray(t).T, dtype=np.int64)
    zbuf = np.full(rh * rw, -np.inf)

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # NaN/inf vertices
        parts = _raster_chunks(vx, vy, vz, tt, rw, rh, zbuf, cull_backfaces, chunk)
    if not parts:
        return empty
    pix, tri, l1, l2, z = (np.concatenate(p) for p in zip(*parts))
    # Winners: the candidate whose z equals the buffer; ties (shared edges, coplanar overlaps)
    # keep one candidate per pixel via an owner buffer.
    win = np.flatnonzero(z == zbuf[pix])
    owner = np.full(rh * rw, -1, np.int64)
    owner[pix[win]] = win
    lp = np.flatnonzero(owner >= 0)  # covered region pixels, ascending
    win = owner[lp]
    l1 = np.clip(l1[win], 0.0, 1.0)
    l2 = np.clip(l2[win], 0.0, 1.0)
    s12 = l1 + l2
    over = s12 > 1.0
    if over.any():
        l1[over] /= s12[over]
        l2[over] /= s12[over]
    l0 = 1.0 - l1 - l2
    row, col = np.divmod(lp, rw)
    gpix = (row + ry0) * width + (col + rx0)
    return gpix, tri[win], (l0, l1, l2), z[win]


def rasterize(vertices, triangles, height: int, width: int, cull_backfaces: bool = False):
    """Z-buffer rasterisation of one mesh (orthographic, pixel centres at integer coordinates).

    Args:
        vertices: ``(N, 3)`` float, image pixels (x right, y down, larger z = closer).
        triangles: ``(T, 3)`` int, 0-based.
        height, width: image size in pixels.
        cull_backfaces: drop triangles with screen signed area ``<= 0`` (see module docstring;
            front faces of 3DDFA's BFM mesh in image pixels have positive area). Default ``False``:
            every non-degenerate triangle is drawn and the z-buffer decides.

    Returns:
        depth: ``(H, W)`` float32, interpolated z of the nearest surface; **-inf** where no
            triangle covers the pixel (0 would be a valid depth, so it cannot mark "empty").
        tri_index: ``(H, W)`` int32, index into ``triangles`` of the visible triangle, ``-1`` empty.
        bary: ``(H, W, 3)`` float32 barycentric weights of ``triangles[tri_index]``'s three
            vertices at the pixel centre (non-negative, sum to 1); 0 where empty.
    """
    height, width = int(height), int(width)
    pix, tri, bary, z = _raster_compact(vertices, triangles, height, width, cull_backfaces)
    depth = np.full(height * width, -np.inf, np.float32)
    tri_index = np.full(height * width, -1, np.int32)
    bary_img = np.zeros((height * width, 3), np.float32)
    depth[pix] = z
    tri_index[pix] = tri
    for c in range(3):
        bary_img[pix, c] = bary[c]
    return (depth.reshape(height, width), tri_index.reshape(height, width),
            bary_img.reshape(height, width, 3))


def rasterize_sparse(vertices, triangles, height: int, width: int, cull_backfaces: bool = False):
    """:func:`rasterize` returning only the covered pixels (cheap for a small mesh in a large image).

    Returns:
        pix: ``(M,)`` int64 flat pixel indices ``row * width + col``, ascending.
        tri: ``(M,)`` int64 index into ``triangles`` of the visible triangle.
        bary: ``(M, 3)`` float64 barycentric weights of its three vertices (non-negative, sum to 1).
        z: ``(M,)`` float64 interpolated depth.
    """
    pix, tri, bary, z = _raster_compact(vertices, triangles, int(height), int(width), cull_backfaces)
    return pix, tri, np.stack(bary, axis=1), z


def sample_bilinear(image, x, y) -> np.ndarray:
    """Bilinear lookup of ``image (H, W[, C])`` at float pixel coordinates ``x``, ``y`` ``(M,)``.

    Pixel centres are at integer coordinates; points outside the image (and non-finite ones, taken as 0) are
    clamped to the border pixel centres. Returns ``(M, C)`` float64 (``(M,)`` for a 2-D image), in the image's
    own value range."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    flat = img.reshape(h * w, -1)
    x = np.clip(np.nan_to_num(np.asarray(x, np.float64), nan=0.0), 0.0, w - 1)
    y = np.clip(np.nan_to_num(np.asarray(y, np.float64), nan=0.0), 0.0, h - 1)
    x0 = np.minimum(x.astype(np.int64), max(w - 2, 0))  # x >= 0: truncation is floor
    y0 = np.minimum(y.astype(np.int64), max(h - 2, 0))
    dx = 1 if w > 1 else 0
    dy = w if h > 1 else 0
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    i00 = y0 * w + x0
    top = flat[i00] * (1.0 - fx) + flat[i00 + dx] * fx
    bot = flat[i00 + dy] * (1.0 - fx) + flat[i00 + dy + dx] * fx
    out = top * (1.0 - fy) + bot * fy
    return out[:, 0] if img.ndim == 2 else out


def uv_to_texel(uv, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """UV coordinates ``(M, 2)`` (v up) → float texel coordinates ``x``, ``y`` ``(M,)`` of a ``height x width``
    texture (pixel centres at integers, row 0 at the top): ``x = u W - 1/2``, ``y = (1 - v) H - 1/2``."""
    uv = np.asarray(uv, np.float64)
    return uv[:, 0] * width - 0.5, (1.0 - uv[:, 1]) * height - 0.5


# --------------------------------------------------------------------------------------------------
# renders
# --------------------------------------------------------------------------------------------------
def _image_shape(image_or_shape) -> tuple[int, int]:
    if isinstance(image_or_shape, np.ndarray):
        return int(image_or_shape.shape[0]), int(image_or_shape.shape[1])
    shape = tuple(image_or_shape)
    if len(shape) < 2:
        raise ValueError(f"need an image or a (H, W[, C]) shape, got {image_or_shape!r}")
    return int(shape[0]), int(shape[1])


def _as_list(vertices_list) -> list[np.ndarray]:
    if isinstance(vertices_list, np.ndarray) and vertices_list.ndim == 2:
        return [vertices_list]
    return [np.asarray(v) for v in vertices_list]


def _concat_faces(verts: list[np.ndarray], triangles) -> tuple[np.ndarray, np.ndarray]:
    """One mesh from several faces sharing ``triangles``: face ``f``'s triangles are
    ``f * T ... (f + 1) * T - 1`` of the result."""
    tri = np.asarray(triangles)
    if len(verts) == 1:
        return verts[0], tri
    offsets = np.cumsum([0] + [len(v) for v in verts[:-1]])
    return np.concatenate(verts, axis=0), np.concatenate([tri + o for o in offsets], axis=0)


def _raster_faces(verts: list[np.ndarray], triangles, height: int, width: int,
                  attrs_list: list[list[np.ndarray]], cull_backfaces: bool = False):
    """Rasterise several meshes sharing ``triangles`` into one z-buffer and interpolate attributes.

    ``attrs_list[f][c]``: face ``f``'s per-vertex attribute channel ``c`` ``(N_f,)``. Returns
    ``(pix, [values_c (M,) float64 ...])``: the covered flat pixel indices ``row * width + col`` and
    each channel interpolated with the barycentrics of the visible triangle.
    """
    all_v, all_t = _concat_faces(verts, triangles)
    chans = [np.concatenate([np.asarray(a[c], np.float64) for a in attrs_list])
             for c in range(len(attrs_list[0]))]
    pix, t_idx, (l0, l1, l2), _ = _raster_compact(all_v, all_t, height, width, cull_backfaces)
    tt = np.asarray(all_t).T
    c0, c1, c2 = tt[0][t_idx], tt[1][t_idx], tt[2][t_idx]
    values = [l0 * a[c0] + l1 * a[c1] + l2 * a[c2] for a in chans]
    return pix, values


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
    h, w = _image_shape(image_or_shape)
    verts = _as_list(vertices_list)
    out = np.zeros(h * w, np.uint8)
    if verts:
        all_v, all_t = _concat_faces(verts, triangles)
        pix, t_idx, _, z = _raster_compact(all_v, all_t, h, w, cull_backfaces)
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
    h, w = _image_shape(image_or_shape)
    ncc = np.asarray(ncc, np.float64)
    if ncc.ndim != 2 or ncc.shape[1] != 3:
        if ncc.ndim == 2 and ncc.shape[0] == 3:
            raise ValueError(f"ncc must be (N, 3), got {ncc.shape}; pass ncc_code.T")
        raise ValueError(f"ncc must be (N, 3), got {ncc.shape}")
    verts = _as_list(vertices_list)
    out = np.zeros((h * w, 3), np.uint8)
    if verts:
        bgr = [ncc[:, 2] * 255.0, ncc[:, 1] * 255.0, ncc[:, 0] * 255.0]
        pix, values = _raster_faces(verts, triangles, h, w, [bgr] * len(verts), cull_backfaces)
        for c in range(3):
            out[pix, c] = _to_u8(values[c])
    return out.reshape(h, w, 3)


def _normal_sums(vertices, triangles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-vertex sums of adjacent face normals ``cross(v1 - v0, v2 - v0)`` as three ``(N,)``."""
    v, t = _check_mesh(vertices, triangles)
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
    verts = _as_list(vertices_list)
    if not verts:
        return out
    attrs = []
    for v in verts:
        sx, sy, sz = _normal_sums(v, triangles)
        norm = np.sqrt(sx * sx + sy * sy + sz * sz)
        nz = np.divide(np.abs(sz), norm, out=np.zeros_like(norm), where=norm > 0)  # |n . (0,0,1)|
        attrs.append([ambient + diffuse * nz])
    pix, (inten,) = _raster_faces(verts, triangles, h, w, attrs, cull_backfaces)
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
    verts = _as_list(vertices_list)
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
        all_v, all_t = _concat_faces(verts, tri)
        pix, t_idx, (l0, l1, l2), _ = _raster_compact(all_v, all_t, h, w, cull_backfaces)
        local = t_idx % len(tri) if len(verts) > 1 else t_idx
        tt = tri.T
        c0, c1, c2 = tt[0][local], tt[1][local], tt[2][local]
        u = l0 * uv[c0, 0] + l1 * uv[c1, 0] + l2 * uv[c2, 0]
        v = l0 * uv[c0, 1] + l1 * uv[c1, 1] + l2 * uv[c2, 1]
        colors = np.empty((len(pix), 3), np.uint8)
        face = t_idx // len(tri) if len(verts) > 1 else None
        for f, tex in enumerate(texs):
            sel = slice(None) if face is None else np.flatnonzero(face == f)
            th, tw = tex.shape[:2]
            colors[sel] = _remap_points(tex, u[sel] * tw - 0.5, (1.0 - v[sel]) * th - 0.5)
        flat = out.reshape(h * w, 3)
        flat[pix] = colors if alpha == 1.0 else _to_u8((1.0 - alpha) * flat[pix] + alpha * colors)
        mask[pix] = True
    return (out, mask.reshape(h, w)) if return_mask else out
