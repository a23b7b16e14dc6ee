"""The image around a face as a sheet in 3D: a grid mesh over the photo whose depth is extrapolated from the face.

When a face turns out of plane the photo around it has to move too, or the view is a mask pasted on a still
photo, with holes where the face used to be. 3DDFA's face profiling anchors contours around the face at an
extrapolated depth and triangulates them with the image border; here the whole neighbourhood is one regular grid
(:class:`Sheet`), so there is nothing to triangulate and no gap between face and background:

* **depth**: inside the face's outline in the photo a vertex takes the fitted mesh's depth (its z-buffer there);
  outside, the depth of the nearest outline point minus ``depth_slope`` times the distance to it (the head and
  hair curve away behind the outline, as 3DDFA's contours scaled about the nose tip do), at most
  ``depth_range`` roi sides behind it, smoothed;
* **how much it follows the face**: a weight ``w`` from 1 on the face to 0 at ``falloff`` roi sides from it
  (smoothstep). A view moves each vertex to ``w R(p) + (1 - w) p`` for the face's rotation ``R`` about its
  centroid: hair and ears turn with the head, the far background stays put, and the band in between stretches.

Outside the sheet the view is the photo itself, and the sheet's border lies where ``w = 0``: the warp is
continuous everywhere, so a view has no holes; pixels beyond the photo repeat its edge pixels (no black
borders). The sheet is a square around the face's roi reaching ``falloff`` (plus a vertex) beyond the face's
furthest point, so its border is where ``w = 0``, with ``grid_step`` roi sides between vertices. Points are
``(N, 3)`` work-image pixels: x right, y down, z towards the camera (:mod:`tf2dasl.render`).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..render import rasterize


@dataclass(frozen=True)
class SurroundConfig:
    """How the photo around the face is meshed (sizes in roi sides): see the module doc."""

    depth_slope: float = 1.0
    depth_range: float = 0.5
    falloff: float = 0.6
    grid_step: float = 1.0 / 24.0
    smooth: float = 0.05

    def validate(self) -> None:
        for key in ("depth_slope", "depth_range", "smooth"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in ("falloff", "grid_step"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")


@dataclass(frozen=True)
class Sheet:
    """The grid mesh around one face: ``points (M, 3)`` work-image pixels (the photo's own x, y and the
    extrapolated depth), ``weights (M,)`` how much each follows the face, ``triangles (T, 3)``."""

    points: np.ndarray
    weights: np.ndarray
    triangles: np.ndarray

    def moved(self, rotate) -> np.ndarray:
        """``(M, 3)`` the sheet in a view: ``rotate (M, 3) -> (M, 3)`` is the face's motion, applied in full where
        the weight is 1 and not at all where it is 0."""
        w = self.weights[:, None]
        return w * rotate(self.points) + (1.0 - w) * self.points


def grid_triangles(rows: int, cols: int) -> np.ndarray:
    """``(2 (rows - 1)(cols - 1), 3)`` triangles of a ``rows x cols`` vertex grid (row-major vertex order)."""
    idx = np.arange(rows * cols).reshape(rows, cols)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    return np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)]).astype(np.int64)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def make_sheet(face_vertices: np.ndarray, triangles: np.ndarray, roi, cfg: SurroundConfig) -> Sheet:
    """The sheet around a face whose mesh ``face_vertices (N, 3)`` (work-image pixels; ``triangles (T, 3)`` with
    3DDFA's winding: front faces have a positive area) sits in roi box ``roi`` ``[x0, y0, x1, y1]`` (module doc)."""
    x0, y0, x1, y1 = (float(v) for v in roi)
    side = max(x1 - x0, y1 - y0)
    step = cfg.grid_step * side
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    v = np.asarray(face_vertices, np.float64)
    reach = np.abs(v[:, :2] - centre).max() + cfg.falloff * side + step      # w = 0 from here on
    n = 2 * int(np.ceil(reach / step)) + 1                                     # vertices per row and column
    origin = centre - step * (n - 1) / 2
    # the face's depth at the grid's vertices: the grid is an image whose pixel centres are the vertices
    on_grid = np.c_[(v[:, :2] - origin) / step, v[:, 2] / step]
    depth, _, _ = rasterize(on_grid, triangles, n, n, cull_backfaces=True)  # front faces: positive area
    face = np.isfinite(depth)
    z = np.where(face, depth * step, 0.0)
    if face.any():
        dist, labels = cv2.distanceTransformWithLabels((~face).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
        inside = np.flatnonzero(face.ravel())
        lut = np.zeros(labels.max() + 1, np.int64)
        lut[labels.ravel()[inside]] = inside
        nearest = z.ravel()[lut[labels.ravel()]].reshape(n, n)          # depth of the nearest face vertex
        dist = dist * step
        z = np.where(face, z, nearest - np.minimum(cfg.depth_slope * dist, cfg.depth_range * side))
        if cfg.smooth > 0:
            blurred = cv2.GaussianBlur(z, (0, 0), cfg.smooth * side / step)
            z = np.where(face, z, blurred)
        weights = np.where(face, 1.0, _smoothstep(1.0 - dist / (cfg.falloff * side)))
    else:
        dist, weights = np.zeros((n, n)), np.zeros((n, n))
    gy, gx = np.mgrid[0:n, 0:n].astype(np.float64)
    points = np.stack([origin[0] + step * gx, origin[1] + step * gy, z], axis=-1).reshape(-1, 3)
    return Sheet(points, weights.reshape(-1), grid_triangles(n, n))
