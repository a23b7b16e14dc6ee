"""The 3DDFA morphable model (numpy): bases, whitening, dense vertices and the 68 landmarks.

Two published layouts load into one :class:`MorphableModel` (the file loaders are
:mod:`tf2dasl.io.morphable_files`; geometry reads no files):

* **3DDFA_V2** (``configs/bfm_noneck_v3.pkl``, ``configs/tri.pkl``,
  ``configs/param_mean_std_62d_120x120.pkl``): dense no-neck bases of 38,365 vertices.
* **3DDFA v1 / 2DASL** (``train.configs/``: ``u_shp.npy``, ``u_exp.npy``, ``keypoints_sim.npy``,
  ``param_whitening.pkl`` and the 68-point sparse bases ``u_base.txt``, ``w_shp_base.txt``,
  ``w_exp_base.txt``): the mean shape is dense (53,215 vertices) but the identity/expression bases
  are published only for the 68 landmarks, so such a model is *sparse* (landmarks, no dense mesh).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError

NUM_PARAMS = 62
NUM_POSE, NUM_SHAPE, NUM_EXP = 12, 40, 10
NUM_LANDMARKS = 68
#: The 68-point mirror permutation: after a horizontal flip, point ``i`` takes the position of point
#: ``FLIP_PERMUTATION_68[i]`` (an involution: jaw 0..16 reversed, brows 17..21 <-> 26..22, nose bridge
#: fixed, nostrils 31..35 reversed, eyes 36..41 <-> 45..42,47,46, mouth mirrored about 51/57/62/66).
FLIP_PERMUTATION_68 = np.array(
    list(range(16, -1, -1))                                   # jaw 0..16
    + list(range(26, 21, -1)) + list(range(21, 16, -1))       # brows 17..21 <-> 26..22
    + [27, 28, 29, 30]                                        # nose bridge
    + [35, 34, 33, 32, 31]                                    # nostrils
    + [45, 44, 43, 42, 47, 46]                                # left eye 36..41 <- right eye
    + [39, 38, 37, 36, 41, 40]                                # right eye 42..47 <- left eye
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]        # outer mouth 48..59
    + [64, 63, 62, 61, 60, 67, 66, 65],                       # inner mouth 60..67
    np.int32)
#: the three parts of the 62 parameters: the row-major ``[s R | t]`` (12), identity shape (40), expression (10)
POSE = slice(0, NUM_POSE)
SHAPE = slice(NUM_POSE, NUM_POSE + NUM_SHAPE)
EXPRESSION = slice(NUM_POSE + NUM_SHAPE, NUM_PARAMS)


class MorphableModelError(UserError):
    """A morphable-model file is missing or malformed (one line naming the file)."""


class NoUVError(MorphableModelError):
    """A textured output was asked of a morphable model without UV coordinates."""


#: What to do when a model has no UV coordinates (the one line every textured output gives).
NO_UV_FIX = ("re-create the model directory with `tf2dasl import-3ddfa CHECKOUT --out MODEL_DIR` from a 3DDFA_V2 "
             "checkout that has configs/BFM_UV.mat and configs/indices.npy")


@dataclass
class MorphableModel:
    """Arrays of the morphable model, all float32 except indices.

    u: ``(3N,)`` mean shape, x,y,z-interleaved. w_shp: ``(3N, 40)``. w_exp: ``(3N, 10)``.
    landmark_vertices: ``(68,)`` vertex indices of the 68 landmarks in the dense mesh (``None`` for a
    sparse model). triangles: ``(T, 3)`` int32 (``None`` for a sparse model).
    uv: ``(N, 2)`` texture coordinates of the dense vertices in ``[0, 1]``, ``u`` to the right and ``v`` **up**
    (OBJ's convention: ``v = 0`` is the bottom row of the texture image), or ``None`` (optional: models
    without them work for everything but textured outputs, :meth:`require_uv`).
    u_base / w_shp_base / w_exp_base: ``(204,)``, ``(204, 40)``, ``(204, 10)`` sparse 68-point bases.
    param_mean / param_std: ``(62,)`` the whitening of the parameters.
    """

    u_base: np.ndarray
    w_shp_base: np.ndarray
    w_exp_base: np.ndarray
    param_mean: np.ndarray
    param_std: np.ndarray
    u: np.ndarray | None = None
    w_shp: np.ndarray | None = None
    w_exp: np.ndarray | None = None
    landmark_vertices: np.ndarray | None = None
    triangles: np.ndarray | None = None
    uv: np.ndarray | None = None
    source: dict = field(default_factory=dict)
    _ncc: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: arrays derived from this model once and reused by their users (e.g. tf2dasl.texture's UV layouts), by key
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ properties
    @property
    def is_dense(self) -> bool:
        return self.w_shp is not None and self.w_exp is not None and self.u is not None

    @property
    def num_vertices(self) -> int:
        if self.u is None:
            return 0
        return self.u.shape[0] // 3

    def require_dense(self) -> None:
        if not self.is_dense:
            raise MorphableModelError(
                "this morphable model has only 68-point bases (3DDFA v1 layout); dense vertices need "
                "the 3DDFA_V2 layout (bfm_noneck_v3.pkl)")

    @property
    def has_uv(self) -> bool:
        return self.uv is not None and self.is_dense

    def require_uv(self, what: str = "textured outputs") -> np.ndarray:
        """The ``(N, 2)`` UV coordinates, or :class:`NoUVError` (one line saying how to get a model with them)."""
        if not self.has_uv:
            raise NoUVError(f"{what}: this model directory has no UV coordinates (textured outputs need them); "
                            + NO_UV_FIX)
        return self.uv

    # ------------------------------------------------------------------ whitening
    def whiten(self, params: np.ndarray) -> np.ndarray:
        """``(B, 62)`` raw → whitened ``(p - mean) / std``."""
        return (np.asarray(params, np.float32) - self.param_mean) / self.param_std

    def unwhiten(self, params_w: np.ndarray) -> np.ndarray:
        """``(B, 62)`` whitened → raw ``p * std + mean``."""
        return np.asarray(params_w, np.float32) * self.param_std + self.param_mean

    # ------------------------------------------------------------------ reconstruction
    def shape_offsets(self, params: np.ndarray, dense: bool) -> np.ndarray:
        """Shape in model space before the camera: ``(B, N, 3)`` (N = 68 when not dense)."""
        params = np.asarray(params, np.float32)
        a_shp, a_exp = params[:, SHAPE], params[:, EXPRESSION]
        if dense:
            self.require_dense()
            u, w_shp, w_exp = self.u, self.w_shp, self.w_exp
        else:
            u, w_shp, w_exp = self.u_base, self.w_shp_base, self.w_exp_base
        flat = u[None, :] + a_shp @ w_shp.T + a_exp @ w_exp.T
        return flat.reshape(params.shape[0], -1, 3)

    def vertices(self, params: np.ndarray, dense: bool = True) -> np.ndarray:
        """Raw params ``(B, 62)`` → model-frame points ``(B, N, 3)`` (y up; N = 38,365 or 68)."""
        params = np.asarray(params, np.float32)
        pose = params[:, POSE].reshape(-1, 3, 4)
        shape = self.shape_offsets(params, dense)
        return shape @ np.transpose(pose[:, :, :3], (0, 2, 1)) + pose[:, None, :, 3]

    def landmarks(self, params: np.ndarray) -> np.ndarray:
        """Raw params ``(B, 62)`` → the 68 landmarks in the model frame ``(B, 68, 3)``."""
        return self.vertices(params, dense=False)

    def ncc(self) -> np.ndarray:
        """The normalized coordinate code ``(N, 3)`` in [0, 1]: the mean shape scaled per axis (3DDFA's PNCC colours)."""
        if self._ncc is None:  # computed once per model, not per rendered image
            self.require_dense()
            u = self.u.reshape(-1, 3)
            lo, hi = u.min(axis=0), u.max(axis=0)
            self._ncc = ((u - lo) / (hi - lo)).astype(np.float32)
        return self._ncc

    def arrays(self) -> dict[str, np.ndarray]:
        """All arrays by name (for saving in a model directory)."""
        names = ("u_base", "w_shp_base", "w_exp_base", "param_mean", "param_std", "u", "w_shp", "w_exp",
                 "landmark_vertices", "triangles", "uv")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: dict | None = None) -> "MorphableModel":
        kw = {k: np.asarray(v) for k, v in arrays.items()}
        return cls(**kw, source=dict(source or {}))
