"""Pure geometry of the 3D morphable model: numpy maths and their TensorFlow twins (:mod:`.tf_ops`).

Owns the morphable model's arrays and maths (:mod:`.morphable_model`), the crop conventions and projections
(:mod:`.conventions`, :mod:`.camera`), pose (:mod:`.pose`), roi boxes and crops (:mod:`.roi`) and 2DASL's landmark
map (:mod:`.landmark_map`). Must not import Keras, any other tf2dasl package but :mod:`tf2dasl.errors`, or do
file I/O (the loaders live in :mod:`tf2dasl.io`); only :mod:`.tf_ops` and the ``tf_*`` twins import TensorFlow.

Coordinate conventions — named here once and used everywhere in tf2dasl
----------------------------------------------------------------------
* **params** ``(B, 62)``: 3DDFA's raw parameters ``p``. ``p[:12]`` is the row-major 3x4 matrix
  ``[s*R | t]`` (weak perspective), ``p[12:52]`` shape and ``p[52:62]`` expression coefficients.
  Networks predict **whitened** parameters ``(p - mean) / std``; the whitening travels with the model.
* **model frame** ``(B, N, 3)`` (points last): ``V = S @ P[:, :3].T + P[:, 3]`` with
  ``S = u + W_shp a_shp + W_exp a_exp`` reshaped from its x,y,z-interleaved layout to ``(N, 3)``. It lives in the crop with **y pointing up** and
  1-based-ish offsets (3DDFA's training convention).
* **crop pixels** ``(B, N, 3)``: 0-based pixels of the ``size x size`` crop, y pointing down, as
  3DDFA_V2 maps them: ``x_c = x - 1``, ``y_c = size - y``, ``z_c = z - 1``
  (``CROP_OFFSET_V2``). 3DDFA v1 / 2DASL used ``x_c = x``, ``y_c = size + 1 - y``
  (``CROP_OFFSET_V1``); both are available through :class:`CropConvention`.
* **image pixels** ``(B, N, 3)``: 0-based pixels of the original image: crop pixels scaled by the
  roi box ``[x0, y0, x1, y1]`` (``x = x_c * (x1 - x0) / size + x0``), z scaled by the mean scale.
* **landmarks** are always *points-last*: ``(B, 68, 2)`` or ``(B, 68, 3)``.
* **pose** angles in degrees, ``(yaw, pitch, roll)`` as 3DDFA_V2's ``calc_pose`` reports them.
"""
from .conventions import CROP_OFFSET_V1, CROP_OFFSET_V2, CropConvention  # noqa: F401
from .morphable_model import MorphableModel  # noqa: F401
