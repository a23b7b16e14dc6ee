"""tf2dasl.render against known geometry: planes, overlapping squares, off-image and back faces."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from tf2dasl import render
from tf2dasl.render import raster
from tf2dasl.render.raster import raster_compact


def grid_mesh(x0, x1, y0, y1, nx, ny, zfun=lambda x, y: np.zeros_like(x), flip=False):
    """Rectangle [x0, x1] x [y0, y1] on an nx x ny vertex grid, 2 triangles per cell.

    Triangles are wound with positive screen signed area (front-facing in the 3DDFA convention)
    unless ``flip``.
    """
    xs, ys = np.meshgrid(np.linspace(x0, x1, nx), np.linspace(y0, y1, ny))
    v = np.stack([xs.ravel(), ys.ravel(), zfun(xs.ravel(), ys.ravel())], 1)
    i = (np.arange(ny - 1)[:, None] * nx + np.arange(nx - 1)[None, :]).ravel()
    # (i, i+1, i+nx): x right then y down -> positive signed area with y down.
    tri = np.concatenate([np.stack([i, i + 1, i + nx], 1), np.stack([i + 1, i + nx + 1, i + nx], 1)])
    if flip:
        tri = tri[:, [0, 2, 1]]
    return v.astype(np.float32), tri.astype(np.int32)


def centres_inside(h, w, x0, x1, y0, y1):
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)


def plane(x, y):
    return 0.37 * x - 0.21 * y + 12.5


def signed_area(v, tri):
    a, b, c = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])


# ------------------------------------------------------------------------------------------------
def test_tilted_plane_depth_and_coverage():
    h, w = 60, 80
    x0, x1, y0, y1 = 10.3, 61.6, 7.45, 43.2
    v, tri = grid_mesh(x0, x1, y0, y1, 23, 17, plane)
    depth, tri_index, bary = render.rasterize(v, tri, h, w)
    assert depth.shape == (h, w) and depth.dtype == np.float32
    assert tri_index.shape == (h, w) and tri_index.dtype == np.int32
    assert bary.shape == (h, w, 3) and bary.dtype == np.float32

    covered = tri_index >= 0
    # Non-integer bounds: the covered set is exactly the pixel centres inside the rectangle.
    np.testing.assert_array_equal(covered, centres_inside(h, w, x0, x1, y0, y1))
    assert np.all(np.isneginf(depth[~covered]))
    assert np.all(bary[~covered] == 0)

    yy, xx = np.nonzero(covered)
    np.testing.assert_allclose(depth[yy, xx], plane(xx.astype(float), yy.astype(float)), atol=1e-3)


def test_integer_aligned_square_coverage_within_border():
    # Edges on pixel centres: coverage must agree with the polygon up to a one-pixel border.
    h, w = 40, 40
    v, tri = grid_mesh(5.0, 30.0, 8.0, 20.0, 6, 4, plane)
    covered = render.rasterize(v, tri, h, w)[1] >= 0
    inner = centres_inside(h, w, 6, 29, 9, 19)
    outer = centres_inside(h, w, 4, 31, 7, 21)
    assert np.all(covered[inner]) and not np.any(covered[~outer])
    # Centres on the boundary count as inside: no cracks along the shared diagonals either.
    np.testing.assert_array_equal(covered, centres_inside(h, w, 5, 30, 8, 20))


def test_barycentrics_sum_to_one_and_reconstruct_pixel_centre():
    h, w = 50, 50
    rng = np.random.default_rng(1)
    v, tri = grid_mesh(3.2, 44.7, 2.9, 41.1, 12, 9, plane)
    v[:, :2] += rng.uniform(-0.8, 0.8, size=(len(v), 2)).astype(np.float32)  # irregular triangles
    depth, tri_index, bary = render.rasterize(v, tri, h, w)
    yy, xx = np.nonzero(tri_index >= 0)
    b = bary[yy, xx].astype(np.float64)
    assert np.all(b >= 0)
    np.testing.assert_allclose(b.sum(1), 1.0, atol=1e-6)
    corners = v[tri[tri_index[yy, xx]]].astype(np.float64)  # (M, 3 corners, 3)
    recon = np.einsum("mk,mkc->mc", b, corners)
    np.testing.assert_allclose(recon[:, 0], xx, atol=1e-4)
    np.testing.assert_allclose(recon[:, 1], yy, atol=1e-4)
    np.testing.assert_allclose(recon[:, 2], depth[yy, xx], atol=1e-3)


@pytest.mark.parametrize("near_first", [True, False])
def test_overlapping_squares_nearer_wins(near_first):
    h, w = 40, 40
    va, ta = grid_mesh(4.5, 25.5, 4.5, 25.5, 4, 4, lambda x, y: np.full_like(x, 10.0))   # near
    vb, tb = grid_mesh(14.5, 35.5, 14.5, 35.5, 4, 4, lambda x, y: np.full_like(x, -3.0))  # far
    parts = [(va, ta), (vb, tb)] if near_first else [(vb, tb), (va, ta)]
    v = np.concatenate([parts[0][0], parts[1][0]])
    tri = np.concatenate([parts[0][1], parts[1][1] + len(parts[0][0])])
    depth, tri_index, _ = render.rasterize(v, tri, h, w)
    a = centres_inside(h, w, 4.5, 25.5, 4.5, 25.5)
    b = centres_inside(h, w, 14.5, 35.5, 14.5, 35.5)
    assert np.all(depth[a] == 10.0)            # overlap included: the near square wins
    assert np.all(depth[b & ~a] == -3.0)
    near_tris = np.arange(len(ta)) + (0 if near_first else len(tb))
    assert np.all(np.isin(tri_index[a & b], near_tris))

    # Same with two faces through render_depth (tilted so each normalises to a ramp): the overlap
    # shows the nearer face's normalised depth, whatever the list order.
    va2, vb2 = va.copy(), vb.copy()
    va2[:, 2] += 0.01 * va2[:, 0]
    vb2[:, 2] += 0.01 * vb2[:, 0]
    dmap = render.render_depth((h, w), [va2, vb2] if near_first else [vb2, va2], ta)
    za = (10.0 + 0.01 * np.arange(w) - va2[:, 2].min()) / np.ptp(va2[:, 2])
    yy, xx = np.nonzero(a & b)
    np.testing.assert_allclose(dmap[yy, xx], np.rint(255 * za[xx]), atol=1)


def test_off_image_and_partially_clipped_triangles():
    h, w = 30, 40
    far = np.array([[-50, -50, 1], [-40, -50, 1], [-50, -40, 1],
                    [100, 5, 1], [120, 5, 1], [100, 20, 1],
                    [5, 1e6, 1], [6, 1e6, 1], [5, 2e6, 1]], np.float32)
    tri = np.arange(9, dtype=np.int32).reshape(3, 3)
    depth, tri_index, bary = render.rasterize(far, tri, h, w)
    assert np.all(tri_index == -1) and np.all(np.isneginf(depth))
    assert not render.render_depth((h, w), [far], tri).any()

    # A huge triangle covering the image and beyond: every pixel covered, plane depth.
    big = np.array([[-100, -100, 0], [300, -100, 40], [-100, 300, -40]], np.float32)
    depth, tri_index, _ = render.rasterize(big, np.array([[0, 1, 2]]), h, w)
    assert np.all(tri_index == 0)
    yy, xx = np.mgrid[0:h, 0:w]
    np.testing.assert_allclose(depth, 0.1 * (xx + 100) - 0.1 * (yy + 100), atol=1e-3)

    # NaN / inf vertices and degenerate triangles draw nothing and do not crash.
    bad = np.array([[np.nan, 3, 0], [10, 3, 0], [5, 10, 0],
                    [np.inf, 3, 0], [10, 3, 0], [5, 10, 0],
                    [2, 2, 0], [8, 8, 0], [14, 14, 0]], np.float32)
    assert np.all(render.rasterize(bad, tri, h, w)[1] == -1)


def test_backface_handling():
    h, w = 30, 30
    v, front = grid_mesh(3.5, 20.5, 3.5, 20.5, 5, 5, plane)
    back = front[:, [0, 2, 1]]
    assert np.all(signed_area(v, front) > 0) and np.all(signed_area(v, back) < 0)
    inside = centres_inside(h, w, 3.5, 20.5, 3.5, 20.5)
    # Default: no culling, either winding renders identically.
    d_front = render.rasterize(v, front, h, w)[0]
    d_back = render.rasterize(v, back, h, w)[0]
    np.testing.assert_array_equal(d_front, d_back)
    assert np.all(np.isfinite(d_front[inside]))
    # cull_backfaces=True: negative signed area (back faces in the 3DDFA convention) is dropped.
    assert np.all(render.rasterize(v, front, h, w, cull_backfaces=True)[1][inside] >= 0)
    assert np.all(render.rasterize(v, back, h, w, cull_backfaces=True)[1] == -1)
    assert not render.render_depth((h, w), [v], back, cull_backfaces=True).any()


def test_vertex_normals_of_plane_and_sphere():
    v, tri = grid_mesh(0, 10, 0, 10, 6, 6, plane)
    n = render.vertex_normals(v, tri)
    expect = np.array([-0.37, 0.21, 1.0]) / np.linalg.norm([-0.37, 0.21, 1.0])
    np.testing.assert_allclose(n, np.broadcast_to(expect, n.shape), atol=1e-5)  # +z: towards camera
    np.testing.assert_allclose(render.vertex_normals(v, tri[:, [0, 2, 1]]), -n, atol=1e-6)

    # A UV sphere band: vertex normals are radial.
    th, ph = np.meshgrid(np.linspace(0.3, np.pi - 0.3, 20), np.linspace(0, 2 * np.pi, 41)[:-1], indexing="ij")
    pts = np.stack([np.sin(th) * np.cos(ph), np.cos(th), np.sin(th) * np.sin(ph)], -1).reshape(-1, 3)
    i = (np.arange(19)[:, None] * 40 + np.arange(40)[None, :]).ravel()
    j = (i // 40) * 40 + (i % 40 + 1) % 40
    tri_s = np.concatenate([np.stack([i, j, i + 40], 1), np.stack([j, j + 40, i + 40], 1)])
    ns = render.vertex_normals(pts, tri_s)
    cos = np.abs(np.sum(ns * pts, 1))
    inner = (np.arange(len(pts)) // 40 > 0) & (np.arange(len(pts)) // 40 < 19)
    assert np.all(cos[inner] > 0.99)


def test_pncc_interpolates_given_codes():
    h, w = 50, 60
    x0, x1, y0, y1 = 5.5, 50.5, 4.5, 40.5
    v, tri = grid_mesh(x0, x1, y0, y1, 10, 8, plane)
    # Codes affine in the plane: linear interpolation reproduces them exactly at every pixel.
    r = (v[:, 0] - x0) / (x1 - x0)
    g = 1.0 - (v[:, 1] - y0) / (y1 - y0)
    b = 0.25 + 0.5 * (v[:, 1] - y0) / (y1 - y0)
    ncc = np.stack([r, g, b], 1)
    out = render.render_pncc((h, w, 3), [v], tri, ncc)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    inside = centres_inside(h, w, x0, x1, y0, y1)
    assert not out[~inside].any()
    yy, xx = np.nonzero(inside)
    er = (xx - x0) / (x1 - x0)
    eg = 1.0 - (yy - y0) / (y1 - y0)
    eb = 0.25 + 0.5 * (yy - y0) / (y1 - y0)
    # BGR output: channel 2 = R = ncc[:, 0].
    np.testing.assert_allclose(out[yy, xx, 2], 255 * er, atol=0.51)
    np.testing.assert_allclose(out[yy, xx, 1], 255 * eg, atol=0.51)
    np.testing.assert_allclose(out[yy, xx, 0], 255 * eb, atol=0.51)
    with pytest.raises(ValueError):
        render.render_pncc((h, w), [v], tri, ncc.T)


def test_render_depth_nearer_is_brighter():
    h, w = 40, 50
    v, tri = grid_mesh(2.5, 45.5, 3.5, 35.5, 9, 7, plane)
    dmap = render.render_depth(np.zeros((h, w, 3), np.uint8), [v], tri)
    assert dmap.shape == (h, w) and dmap.dtype == np.uint8
    inside = centres_inside(h, w, 2.5, 45.5, 3.5, 35.5)
    assert not dmap[~inside].any()
    yy, xx = np.nonzero(inside)
    zn = (plane(xx, yy) - v[:, 2].min()) / np.ptp(v[:, 2])
    np.testing.assert_allclose(dmap[yy, xx], 255 * zn, atol=0.51)
    # z grows with x (0.37 x): brightness increases to the right.
    row = dmap[20, 3:45].astype(int)
    assert np.all(np.diff(row) >= 0) and row[-1] > row[0] + 100


def test_render_shaded_outside_unchanged_and_lambert_inside():
    h, w = 40, 50
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    before = img.copy()
    v, tri = grid_mesh(5.5, 40.5, 6.5, 30.5, 8, 6, lambda x, y: np.full_like(x, 7.0))
    out = render.render_shaded(img, [v], tri, alpha=0.6, color=(255, 200, 100))
    np.testing.assert_array_equal(img, before)   # input untouched
    inside = centres_inside(h, w, 5.5, 40.5, 6.5, 30.5)
    np.testing.assert_array_equal(out[~inside], img[~inside])
    # Plane facing the camera: n . l = 1, intensity = ambient + diffuse = 0.9.
    shade = 0.9 * np.array([255.0, 200.0, 100.0])
    expect = 0.4 * img[inside].astype(float) + 0.6 * shade
    np.testing.assert_allclose(out[inside], expect, atol=0.51)
    # A plane tilted by 60 degrees about y: n_z = cos 60 = 0.5 -> intensity 0.3 + 0.6 * 0.5.
    k = np.tan(np.pi / 3)
    vt, tt = grid_mesh(5.5, 40.5, 6.5, 30.5, 8, 6, lambda x, y: k * x)
    out = render.render_shaded(np.zeros_like(img), [vt], tt, alpha=1.0)
    np.testing.assert_allclose(out[inside], 255 * 0.6, atol=0.51)
    assert not out[~inside].any()


def test_real_mesh_winding_cull_and_ncc(shared_dir):
    cfg = shared_dir / "assets" / "3ddfa_v2" / "configs"
    if not (cfg / "bfm_noneck_v3.pkl").is_file():
        pytest.skip("bfm_noneck_v3.pkl not in shared assets")
    with open(cfg / "bfm_noneck_v3.pkl", "rb") as f:
        u = np.asarray(pickle.load(f)["u"], np.float64).reshape(-1, 3)
    with open(cfg / "tri.pkl", "rb") as f:
        tri = np.asarray(pickle.load(f)).T
    s = 300.0 / np.ptp(u[:, 1])
    v = np.stack([(u[:, 0] - u[:, 0].mean()) * s + 640, -(u[:, 1] - u[:, 1].mean()) * s + 360,
                  (u[:, 2] - u[:, 2].mean()) * s], 1).astype(np.float32)
    # 3DDFA's winding in image pixels: the visible (front) triangles have positive signed area.
    sa = signed_area(v.astype(np.float64), tri)
    assert (sa > 0).mean() > 0.9
    depth, tri_index, _ = render.rasterize(v, tri, 720, 1280)
    covered = tri_index >= 0
    assert 40_000 < covered.sum() < 90_000
    # Back faces are (nearly) all hidden in this frontal view: culling them changes at most a few
    # pixels (folds at the mouth corners), and nothing where front faces are drawn.
    d2, t2, _ = render.rasterize(v, tri, 720, 1280, cull_backfaces=True)
    both = (t2 >= 0) & covered
    assert np.count_nonzero((t2 >= 0) != covered) <= 10 and not np.any((t2 >= 0) & ~covered)
    np.testing.assert_array_equal(d2[both], depth[both])
    if (cfg / "ncc_code.npy").is_file():
        ncc_file = np.load(cfg / "ncc_code.npy").T
        ncc_calc = (u - u.min(0)) / np.ptp(u, axis=0)
        np.testing.assert_allclose(ncc_calc, ncc_file, atol=1e-5)
        a = render.render_pncc((720, 1280), [v], tri, ncc_file)
        b = render.render_pncc((720, 1280), [v], tri, ncc_calc)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def brute_force_depth(v, tri, h, w):
    """Reference z-buffer: every pixel centre against every triangle (small images only)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    depth = np.full((h, w), -np.inf)
    v = v.astype(np.float64)
    for a, b, c in v[tri]:
        area = (b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])
        if area == 0:
            continue
        l1 = ((xx - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (yy - a[1])) / area
        l2 = ((b[0] - a[0]) * (yy - a[1]) - (xx - a[0]) * (b[1] - a[1])) / area
        l0 = 1 - l1 - l2
        inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)
        z = l0 * a[2] + l1 * b[2] + l2 * c[2]
        depth = np.where(inside & (z > depth), z, depth)
    return depth


@pytest.mark.parametrize("win", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_random_triangles_match_brute_force(seed, win, monkeypatch):
    monkeypatch.setattr(raster, "_WIN", win)  # size of the fixed-window pass
    rng = np.random.default_rng(seed)
    h, w = 37, 53
    # Mix of tiny (~1 px), medium and large triangles, either winding, some off-image.
    centres = rng.uniform(-5, 58, size=(120, 1, 3)) * np.array([1, 0.7, 0])
    scale = np.repeat(rng.choice([0.7, 1.5, 4.0, 25.0], size=120), 3).reshape(120, 3, 1)
    v = (centres + rng.normal(size=(120, 3, 3)) * scale * np.array([1, 1, 0])).reshape(-1, 3)
    v[:, 2] = rng.uniform(-20, 20, size=len(v))
    tri = np.arange(len(v)).reshape(-1, 3)
    depth, tri_index, _ = render.rasterize(v.astype(np.float32), tri, h, w)
    ref = brute_force_depth(v.astype(np.float32), tri, h, w)
    np.testing.assert_array_equal(np.isfinite(depth), np.isfinite(ref))
    m = np.isfinite(ref)
    np.testing.assert_allclose(depth[m], ref[m], atol=1e-3)
    # Chunked processing (many small chunks) gives the same z-buffer.
    pix, _, _, z = raster_compact(v, tri, h, w, chunk=7)
    np.testing.assert_array_equal(pix, np.flatnonzero(np.isfinite(depth)))
    np.testing.assert_allclose(z, depth.ravel()[pix], atol=1e-4)
