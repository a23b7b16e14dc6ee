"""A small UV-mapped synthetic "face" for the texture, mesh and edit tests: a bumped grid with a nose, its UVs, a
left/right-symmetric mean shape, expression bases that open a "mouth", 68 landmark vertices on a face-like
layout, and Face records placed in an image."""
from __future__ import annotations

import numpy as np

from tf2dasl.geometry.morphable_model import MorphableModel
from tf2dasl.geometry.object_frame import OBJECT_SCALE, object_origin, object_vertices
from tf2dasl.geometry.pose import angles_to_matrix, matrix_to_angles
from tf2dasl.reconstruct import Face

#: grid vertices across and down
NX, NY = 41, 49
#: half width / half height of the grid in BFM-like units (the mean face is ~1.5e5 wide)
HALF_W, HALF_H = 70000.0, 85000.0


def _height(x, y):
    """z of the surface: a rounded front (a half ellipsoid-ish bump) plus a nose."""
    r2 = (x / HALF_W) ** 2 * 0.8 + (y / HALF_H) ** 2 * 0.6
    nose = 25000.0 * np.exp(-((x / 9000.0) ** 2 + ((y + 5000.0) / 20000.0) ** 2))
    return 60000.0 * np.sqrt(np.clip(1.2 - r2, 0.0, None)) + nose


def uv_face_model(seed: int = 0) -> MorphableModel:
    """A dense MorphableModel with UVs: grid vertices (x right, y up, z out), triangles wound like 3DDFA's (positive
    screen area in image pixels), UV = normalised x/y, symmetric in x; shape bases small and random, expression
    basis 0 opens a mouth (lower-centre vertices move down), the others are small and random."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.linspace(-HALF_W, HALF_W, NX), np.linspace(HALF_H, -HALF_H, NY))  # row 0 at the top
    x, y = xs.ravel(), ys.ravel()
    u = np.stack([x, y, _height(x, y)], 1).astype(np.float32)
    n = len(u)
    i = (np.arange(NY - 1)[:, None] * NX + np.arange(NX - 1)[None, :]).ravel()
    # rows go down (y decreasing), columns right: (i, i+1, i+NX) has positive area in image pixels (y down)
    tri = np.concatenate([np.stack([i, i + 1, i + NX], 1), np.stack([i + 1, i + NX + 1, i + NX], 1)]).astype(np.int32)
    uv = np.stack([(x + HALF_W) / (2 * HALF_W), (y + HALF_H) / (2 * HALF_H)], 1).astype(np.float32)
    w_shp = rng.normal(0, 1.0, (3 * n, 40)).astype(np.float32)
    w_exp = rng.normal(0, 1.0, (3 * n, 10)).astype(np.float32)
    mouth = np.exp(-((x / 25000.0) ** 2 + ((y + 45000.0) / 15000.0) ** 2)) * (y < -45000.0)
    w_exp[:, 0] = 0.0
    w_exp[1::3, 0] = -mouth * 1.0  # y of the vertices below the mouth line moves down with coefficient 0
    lmv = landmark_layout(x, y)
    flat = (lmv[:, None] * 3 + np.arange(3)).reshape(-1)
    ur = u.reshape(-1)
    mean = np.zeros(62, np.float32)
    std = np.ones(62, np.float32)
    return MorphableModel(u_base=ur[flat], w_shp_base=w_shp[flat], w_exp_base=w_exp[flat], param_mean=mean,
                          param_std=std, u=ur.copy(), w_shp=w_shp, w_exp=w_exp, landmark_vertices=lmv,
                          triangles=tri, uv=uv)


def landmark_layout(x, y) -> np.ndarray:
    """68 vertex indices in the iBUG layout's places: jaw 0-16 around the lower face, brows 17-26, nose 27-35,
    eyes 36-47, outer lips 48-59, inner lips 60-67 (the nearest grid vertices)."""
    pts = []
    for t in np.linspace(-1.0, 1.0, 17):  # jaw: from the left temple under the chin to the right one
        a = np.pi * (0.5 + 0.5 * t)
        pts.append((-0.85 * HALF_W * np.cos(a), -0.85 * HALF_H * np.sin(a) + 10000))
    pts += [(xx, 40000.0) for xx in np.linspace(-50000, -10000, 5)] + [(xx, 40000.0) for xx in np.linspace(10000, 50000, 5)]
    pts += [(0.0, yy) for yy in np.linspace(30000, 0, 4)] + [(xx, -10000.0) for xx in np.linspace(-10000, 10000, 5)]
    for cx in (-30000.0, 30000.0):
        pts += [(cx + 12000 * np.cos(a), 22000 + 5000 * np.sin(a)) for a in np.linspace(np.pi, -np.pi, 7)[:-1]]
    pts += [(22000 * np.cos(a), -42000 + 9000 * np.sin(a)) for a in np.linspace(np.pi, -np.pi, 13)[:-1]]
    pts += [(14000 * np.cos(a), -45000 + 3000 * np.sin(a)) for a in np.linspace(np.pi, -np.pi, 9)[:-1]]
    pts = np.array(pts)
    grid = np.stack([x, y], 1)
    return np.array([int(np.argmin(((grid - p) ** 2).sum(1))) for p in pts], np.int32)


def place_face(mm: MorphableModel, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, centre=(160.0, 150.0),
               height: float = 180.0, expression=None) -> Face:
    """A Face record of ``mm`` posed in an image: the object frame rotated, scaled to ``height`` pixels and
    moved to ``centre``; ``vertices`` (image pixels) and ``landmarks_3d`` filled, params hold the expression."""
    params = np.zeros(62, np.float32)
    if expression is not None:
        params[52:62] = expression
    R = angles_to_matrix(np.array([[yaw, pitch, roll]]))[0]
    s = height / (2 * HALF_H * OBJECT_SCALE)
    obj = object_vertices(mm, params[None])[0].astype(np.float64)
    photo = obj @ (s * R).T + [centre[0], -centre[1], 0.0]
    v = (photo * [1.0, -1.0, 1.0]).astype(np.float32)
    lm = v[mm.landmark_vertices]
    lo, hi = lm[:, :2].min(0), lm[:, :2].max(0)
    side = float((hi - lo).max()) * 1.5
    c = (lo + hi) / 2
    roi = np.array([c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2], np.float32)
    # the pose params [s R | t] are not used by the edits (they read the pose from vertices); angles for the record
    pose = matrix_to_angles(R[None])[0].astype(np.float32)
    return Face(np.r_[lo, hi].astype(np.float32), 1.0, roi, params, lm.astype(np.float32), pose, vertices=v)


def checker_texture(size: int = 256, cells: int = 8, colours=((40, 90, 200), (220, 200, 150))) -> np.ndarray:
    """A smooth-edged two-colour checkerboard ``(size, size, 3)`` uint8 BGR."""
    yy, xx = np.mgrid[0:size, 0:size] / size * cells * np.pi
    t = (np.sin(xx) * np.sin(yy) * 3).clip(-1, 1) * 0.5 + 0.5
    a, b = np.array(colours[0], np.float64), np.array(colours[1], np.float64)
    return np.rint(a + (b - a) * t[..., None]).astype(np.uint8)


def smooth_texture(size: int = 256, seed: int = 0) -> np.ndarray:
    """A smooth random colour field ``(size, size, 3)`` uint8 BGR (bilinear interpolation reproduces it well)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(30, 225, (6, 6, 3)).astype(np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


__all__ = ["uv_face_model", "place_face", "checker_texture", "smooth_texture", "object_origin"]
