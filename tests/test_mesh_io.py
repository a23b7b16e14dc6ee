"""tf2dasl.io.mesh: OBJ / binary PLY round trips (parsed independently here) and colour sampling."""
from __future__ import annotations

import numpy as np
import pytest

from tf2dasl.io.mesh import sample_vertex_colors, write_obj, write_ply


@pytest.fixture()
def mesh():
    rng = np.random.default_rng(0)
    v = rng.uniform(-50, 300, size=(40, 3)).astype(np.float32)
    tri = rng.integers(0, 40, size=(70, 3)).astype(np.int32)
    colors = rng.uniform(0, 1, size=(40, 3)).astype(np.float32)
    return v, tri, colors


def parse_obj(path):
    verts, faces = [], []
    for line in open(path, encoding="ascii"):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if parts[0] == "v":
            verts.append([float(p) for p in parts[1:]])
        elif parts[0] == "f":
            faces.append([int(p.split("/")[0]) for p in parts[1:]])
    return np.array(verts), np.array(faces)


def parse_ply(path):
    """Minimal binary_little_endian PLY reader for the layout write_ply documents."""
    data = open(path, "rb").read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[0] == "ply" and header[1] == "format binary_little_endian 1.0"
    elements, current = [], None
    for line in header[2:]:
        tok = line.split()
        if tok[0] == "element":
            current = (tok[1], int(tok[2]), [])
            elements.append(current)
        elif tok[0] == "property":
            current[2].append(tok[1:])
    types = {"float": "<f4", "uchar": "u1", "int": "<i4"}
    out, offset = {}, end
    for name, count, props in elements:
        if name == "vertex":
            dt = np.dtype([(p[1], types[p[0]]) for p in props])
        else:
            assert props == [["list", "uchar", "int", "vertex_indices"]]
            dt = np.dtype([("n", "u1"), ("idx", "<i4", (3,))])
        arr = np.frombuffer(data, dtype=dt, count=count, offset=offset)
        offset += arr.nbytes
        out[name] = arr
    assert offset == len(data)
    return out


@pytest.mark.parametrize("flip_y", [True, False])
def test_obj_round_trip(tmp_path, mesh, flip_y):
    v, tri, colors = mesh
    path = write_obj(tmp_path / "m.obj", v, tri, colors, flip_y=flip_y)
    pv, pf = parse_obj(path)
    assert pv.shape == (40, 6) and pf.shape == (70, 3)
    sign = np.array([1, -1, 1]) if flip_y else np.array([1, 1, 1])
    np.testing.assert_allclose(pv[:, :3], v * sign, atol=1e-5)
    np.testing.assert_allclose(pv[:, 3:], colors, atol=1e-6)
    expect_faces = tri[:, [0, 2, 1]] if flip_y else tri
    np.testing.assert_array_equal(pf, expect_faces + 1)   # 1-based


def test_obj_without_colors_and_uint8_colors(tmp_path, mesh):
    v, tri, colors = mesh
    pv, pf = parse_obj(write_obj(tmp_path / "a.obj", v, tri))
    assert pv.shape == (40, 3) and pf.min() >= 1 and pf.max() <= 40
    c8 = (colors * 255).round().astype(np.uint8)
    pv, _ = parse_obj(write_obj(tmp_path / "b.obj", v, tri, c8))
    np.testing.assert_allclose(pv[:, 3:], c8 / 255.0, atol=1e-6)


def test_flip_keeps_outward_normals(tmp_path):
    # A triangle whose normal cross(v1 - v0, v2 - v0) points to +z (towards the camera) in image
    # pixels keeps pointing to +z in the written (x, -y, z) file.
    v = np.array([[0, 0, 5], [10, 0, 5], [0, 10, 5]], np.float32)
    tri = np.array([[0, 1, 2]])
    assert np.cross(v[1] - v[0], v[2] - v[0])[2] > 0
    pv, pf = parse_obj(write_obj(tmp_path / "t.obj", v, tri))
    a, b, c = pv[pf[0] - 1]
    assert np.cross(b - a, c - a)[2] > 0
    assert pv[2, 1] < pv[0, 1]   # image-down is file-down: y flipped


@pytest.mark.parametrize("kind", ["float", "uint8", "none"])
def test_ply_round_trip(tmp_path, mesh, kind):
    v, tri, colors = mesh
    c = {"float": colors, "uint8": (colors * 255).round().astype(np.uint8), "none": None}[kind]
    path = write_ply(tmp_path / "m.ply", v, tri, c)
    ply = parse_ply(path)
    vert, face = ply["vertex"], ply["face"]
    np.testing.assert_array_equal(np.stack([vert["x"], vert["y"], vert["z"]], 1), v * np.array([1, -1, 1], np.float32))
    assert np.all(face["n"] == 3)
    np.testing.assert_array_equal(face["idx"], tri[:, [0, 2, 1]])
    if kind == "none":
        assert "red" not in vert.dtype.names
    else:
        rgb = np.stack([vert["red"], vert["green"], vert["blue"]], 1)
        np.testing.assert_array_equal(rgb, np.clip(np.rint(colors * 255), 0, 255).astype(np.uint8))


def test_ply_no_flip_and_bad_input(tmp_path, mesh):
    v, tri, _ = mesh
    ply = parse_ply(write_ply(tmp_path / "m.ply", v, tri, flip_y=False))
    np.testing.assert_array_equal(ply["vertex"]["y"], v[:, 1])
    np.testing.assert_array_equal(ply["face"]["idx"], tri)
    with pytest.raises(ValueError):
        write_ply(tmp_path / "x.ply", v, tri.T)
    with pytest.raises(ValueError):
        write_obj(tmp_path / "x.obj", v, tri + 100)


def test_sample_vertex_colors_on_gradient():
    h, w = 30, 40
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 7                          # B constant
    img[..., 1] = (xx * 6).astype(np.uint8)  # G = 6 x (linear: bilinear reproduces it)
    img[..., 2] = (yy * 8).astype(np.uint8)  # R = 8 y
    pts = np.array([[0, 0, 1], [3.25, 4.5, 0], [38.9, 28.1, 2], [12.0, 7.0, 0],
                    [-5, 10.5, 0], [100, -3, 0], [39, 29, 0]], np.float32)
    rgb = sample_vertex_colors(img, pts)
    assert rgb.shape == (7, 3) and rgb.dtype == np.float32
    cx = np.clip(pts[:, 0], 0, w - 1)
    cy = np.clip(pts[:, 1], 0, h - 1)
    np.testing.assert_allclose(rgb[:, 0], 8 * cy / 255, atol=1e-6)   # R
    np.testing.assert_allclose(rgb[:, 1], 6 * cx / 255, atol=1e-6)   # G
    np.testing.assert_allclose(rgb[:, 2], 7 / 255, atol=1e-6)        # B
    # Non-linear content: exact bilinear mix of the four neighbours.
    img2 = np.zeros((4, 4, 3), np.uint8)
    img2[1, 1] = (0, 0, 200)
    got = sample_vertex_colors(img2, np.array([[1.5, 1.25]]))
    np.testing.assert_allclose(got[0, 0], 200 / 255 * 0.5 * 0.75, atol=1e-6)
