"""The numpy z-buffer rasteriser: which triangle covers which pixel, with barycentrics and depth; bilinear
texture lookup. The conventions and the algorithm are in :mod:`tf2dasl.render`'s docstring."""
from __future__ import annotations

import numpy as np

# Inside test tolerance on barycentric coordinates (pixel centres exactly on an edge are inside).
_BARY_EPS = 1e-7
# Triangles per chunk: temporaries stay ~100-250 kB (cache-resident, recycled by the allocator).
_CHUNK = 16384
#: Faces rasterised together in one pass of :func:`raster_meshes`; more are done pass by pass and merged by depth,
#: so a picture of many faces needs the memory of this many (a dense face is ~76k triangles, ~5 MB of temporaries).
FACES_PER_PASS = 8


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
def check_mesh(vertices, triangles) -> tuple[np.ndarray, np.ndarray]:
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


def raster_compact(vertices, triangles, height: int, width: int, cull_backfaces: bool = False,
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
    v, t = check_mesh(vertices, triangles)
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
    pix, tri, bary, z = raster_compact(vertices, triangles, height, width, cull_backfaces)
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
    pix, tri, bary, z = raster_compact(vertices, triangles, int(height), int(width), cull_backfaces)
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
def image_shape(image_or_shape) -> tuple[int, int]:
    if isinstance(image_or_shape, np.ndarray):
        return int(image_or_shape.shape[0]), int(image_or_shape.shape[1])
    shape = tuple(image_or_shape)
    if len(shape) < 2:
        raise ValueError(f"need an image or a (H, W[, C]) shape, got {image_or_shape!r}")
    return int(shape[0]), int(shape[1])


def as_list(vertices_list) -> list[np.ndarray]:
    if isinstance(vertices_list, np.ndarray) and vertices_list.ndim == 2:
        return [vertices_list]
    return [np.asarray(v) for v in vertices_list]


def concat_faces(verts: list[np.ndarray], triangles) -> tuple[np.ndarray, np.ndarray]:
    """One mesh from several faces sharing ``triangles``: face ``f``'s triangles are
    ``f * T ... (f + 1) * T - 1`` of the result."""
    tri = np.asarray(triangles)
    if len(verts) == 1:
        return verts[0], tri
    offsets = np.cumsum([0] + [len(v) for v in verts[:-1]])
    return np.concatenate(verts, axis=0), np.concatenate([tri + o for o in offsets], axis=0)


def raster_meshes(verts: list[np.ndarray], triangles, height: int, width: int, cull_backfaces: bool = False):
    """:func:`raster_compact` of several meshes sharing ``triangles`` as one mesh (face ``f``'s triangles are
    ``f * T ... (f + 1) * T - 1``), in passes of :data:`FACES_PER_PASS` faces merged by depth (the nearest wins,
    a tie keeps the earlier face): memory does not grow with the number of faces. Same return values."""
    tri = np.asarray(triangles)
    best = None
    for g in range(0, len(verts), FACES_PER_PASS):
        all_v, all_t = concat_faces(verts[g:g + FACES_PER_PASS], tri)
        pix, t_idx, bary, z = raster_compact(all_v, all_t, height, width, cull_backfaces)
        part = (pix, t_idx + g * len(tri), *bary, z)
        best = part if best is None else _nearest(best, part)
    if best is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), (np.zeros(0),) * 3, np.zeros(0)
    return best[0], best[1], best[2:5], best[5]


def _nearest(a: tuple, b: tuple) -> tuple:
    """Two ``(pix, tri, l0, l1, l2, z)`` rasterisations merged: per pixel the nearer (larger z), ``a`` on a tie;
    pixels ascending."""
    cat = [np.concatenate(pair) for pair in zip(a, b)]
    pix, z = cat[0], cat[5]
    order = np.lexsort((-z, pix))  # by pixel, nearest first; stable, so a's candidate first on a tie
    first = np.ones(len(order), bool)
    first[1:] = pix[order][1:] != pix[order][:-1]
    keep = order[first]
    return tuple(c[keep] for c in cat)


def raster_faces(verts: list[np.ndarray], triangles, height: int, width: int,
                  attrs_list: list[list[np.ndarray]], cull_backfaces: bool = False):
    """Rasterise several meshes sharing ``triangles`` into one z-buffer and interpolate attributes.

    ``attrs_list[f][c]``: face ``f``'s per-vertex attribute channel ``c`` ``(N_f,)``. Returns
    ``(pix, [values_c (M,) float64 ...])``: the covered flat pixel indices ``row * width + col`` and
    each channel interpolated with the barycentrics of the visible triangle.
    """
    tri = np.asarray(triangles)
    pix, t_idx, (l0, l1, l2), _ = raster_meshes(verts, tri, height, width, cull_backfaces)
    face, local = np.divmod(t_idx, len(tri))
    offsets = np.cumsum([0] + [len(v) for v in verts])[face]  # the winning face's first vertex
    c0, c1, c2 = (tri[local, k] + offsets for k in range(3))
    chans = [np.concatenate([np.asarray(a[c], np.float64) for a in attrs_list])
             for c in range(len(attrs_list[0]))]
    return pix, [l0 * a[c0] + l1 * a[c1] + l2 * a[c2] for a in chans]
