"""Pictures of meshes and results, in numpy: a vectorised z-buffer rasteriser for dense face meshes and what is
drawn with it.

The package owns :mod:`.raster` (coverage, barycentrics, depth, bilinear texture lookup), :mod:`.shading` (depth,
PNCC, shaded and textured renders, vertex normals) and :mod:`.draw` (landmarks, pose axes and renders over a photo).
It must not import TensorFlow, Keras, the models or any file I/O: renders are arrays, written by
:mod:`tf2dasl.io`.

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

from .raster import rasterize, rasterize_sparse, sample_bilinear, uv_to_texel  # noqa: F401
from .shading import (render_depth, render_pncc, render_shaded, render_textured, texture_colors,  # noqa: F401
                      vertex_normals)

__all__ = ["rasterize", "rasterize_sparse", "render_depth", "render_pncc", "render_shaded", "render_textured",
           "sample_bilinear", "texture_colors", "uv_to_texel", "vertex_normals"]
