"""The 3DDFA morphable model (numpy): bases, whitening, dense vertices and the 68 landmarks.

Two published layouts load into one :class:`MorphableModel`:

* **3DDFA_V2** (``configs/bfm_noneck_v3.pkl``, ``configs/tri.pkl``,
  ``configs/param_mean_std_62d_120x120.pkl``): dense no-neck bases of 38,365 vertices.
* **3DDFA v1 / 2DASL** (``train.configs/``: ``u_shp.npy``, ``u_exp.npy``, ``keypoints_sim.npy``,
  ``param_whitening.pkl`` and the 68-point sparse bases ``u_base.txt``, ``w_shp_base.txt``,
  ``w_exp_base.txt``): the mean shape is dense (53,215 vertices) but the identity/expression bases
  are published only for the 68 landmarks, so such a model is *sparse* (landmarks, no dense mesh).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from ..errors import UserError

NUM_PARAMS = 62
NUM_POSE, NUM_SHAPE, NUM_EXP = 12, 40, 10
NUM_LANDMARKS = 68


class MorphableModelError(UserError):
    """A morphable-model file is missing or malformed (one line naming the file)."""


@dataclass
class MorphableModel:
    """Arrays of the morphable model, all float32 except indices.

    u: ``(3N,)`` mean shape, x,y,z-interleaved. w_shp: ``(3N, 40)``. w_exp: ``(3N, 10)``.
    landmark_vertices: ``(68,)`` vertex indices of the 68 landmarks in the dense mesh (``None`` for a
    sparse model). triangles: ``(T, 3)`` int32 (``None`` for a sparse model).
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
    source: dict = field(default_factory=dict)
    _ncc: np.ndarray | None = field(default=None, repr=False, compare=False)

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
        a_shp = params[:, NUM_POSE:NUM_POSE + NUM_SHAPE]
        a_exp = params[:, NUM_POSE + NUM_SHAPE:]
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
        pose = params[:, :NUM_POSE].reshape(-1, 3, 4)
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

    def slice_keypoints(self, flat_keypoints: np.ndarray) -> "MorphableModel":
        """A copy whose sparse bases are the given x,y,z-interleaved rows ``(3K,)`` of the dense ones."""
        self.require_dense()
        return replace(self, u_base=self.u[flat_keypoints], w_shp_base=self.w_shp[flat_keypoints],
                       w_exp_base=self.w_exp[flat_keypoints])

    def arrays(self) -> dict[str, np.ndarray]:
        """All arrays by name (for saving in a model directory)."""
        names = ("u_base", "w_shp_base", "w_exp_base", "param_mean", "param_std", "u", "w_shp", "w_exp",
                 "landmark_vertices", "triangles")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: dict | None = None) -> "MorphableModel":
        kw = {k: np.asarray(v) for k, v in arrays.items()}
        return cls(**kw, source=dict(source or {}))


# ---------------------------------------------------------------------------- loaders
def _load_pickle(path: Path):
    if not path.is_file():
        raise MorphableModelError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            return _NumpyUnpickler(f).load()
    except MorphableModelError:
        raise
    except Exception as exc:  # corrupt pickle
        raise MorphableModelError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None


class _NumpyUnpickler(pickle.Unpickler):
    """Pickles of the morphable model hold only dicts of numpy arrays: allow nothing else."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise MorphableModelError(f"refused to unpickle {module}.{name}: only numpy arrays are expected")


def _require(d: dict, keys, path: Path):
    missing = [k for k in keys if k not in d]
    if missing:
        raise MorphableModelError(f"{path}: missing key(s) {missing}")


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def _landmark_vertices(flat_keypoints: np.ndarray) -> np.ndarray:
    kp = np.asarray(flat_keypoints).reshape(-1, 3)
    if not (np.all(kp[:, 0] % 3 == 0) and np.all(kp[:, 1] == kp[:, 0] + 1) and np.all(kp[:, 2] == kp[:, 0] + 2)):
        raise MorphableModelError("keypoints are not x,y,z triples of vertices")
    return (kp[:, 0] // 3).astype(np.int32)


def load_3ddfa_v2(configs_dir: str | Path, whitening: str | Path | None = None) -> MorphableModel:
    """Load 3DDFA_V2's ``configs/`` (bfm_noneck_v3.pkl, tri.pkl, param_mean_std_62d_120x120.pkl)."""
    configs_dir = Path(configs_dir)
    bfm_path = configs_dir / "bfm_noneck_v3.pkl"
    bfm = _load_pickle(bfm_path)
    _require(bfm, ("u", "w_shp", "w_exp", "keypoints"), bfm_path)
    tri_path = configs_dir / "tri.pkl"
    tri = _load_pickle(tri_path) if tri_path.is_file() else bfm.get("tri")
    if tri is None:
        raise MorphableModelError(f"{tri_path}: file not found (and bfm_noneck_v3.pkl holds no 'tri')")
    tri = np.asarray(tri)
    if tri.shape[0] == 3 and tri.shape[1] != 3:
        tri = tri.T
    wpath = Path(whitening) if whitening else configs_dir / "param_mean_std_62d_120x120.pkl"
    w = _load_pickle(wpath)
    mean, std = (w.get("mean"), w.get("std")) if "mean" in w else (w.get("param_mean"), w.get("param_std"))
    if mean is None or std is None:
        raise MorphableModelError(f"{wpath}: expected keys mean/std or param_mean/param_std")
    u, w_shp, w_exp = _f32(bfm["u"]).reshape(-1), _f32(bfm["w_shp"]), _f32(bfm["w_exp"])
    kp = np.asarray(bfm["keypoints"]).reshape(-1).astype(np.int64)
    return MorphableModel(
        u_base=u[kp], w_shp_base=w_shp[kp], w_exp_base=w_exp[kp],
        param_mean=_f32(mean).reshape(-1), param_std=_f32(std).reshape(-1),
        u=u, w_shp=w_shp, w_exp=w_exp, landmark_vertices=_landmark_vertices(kp),
        triangles=np.ascontiguousarray(tri.astype(np.int32)),
        source={"layout": "3ddfa_v2", "bfm": str(bfm_path), "whitening": str(wpath)})


def load_3ddfa_v1(train_configs_dir: str | Path) -> MorphableModel:
    """Load 3DDFA v1 / 2DASL's ``train.configs/`` (sparse 68-point bases, 2DASL's whitening)."""
    d = Path(train_configs_dir)
    names = ("u_base.txt", "w_shp_base.txt", "w_exp_base.txt", "param_whitening.pkl")
    for n in names:
        if not (d / n).is_file():
            raise MorphableModelError(f"{d / n}: file not found (expected a 3DDFA v1 train.configs folder)")
    try:
        u_base = _f32(np.loadtxt(d / "u_base.txt")).reshape(-1)
        w_shp_base = _f32(np.loadtxt(d / "w_shp_base.txt")).reshape(-1, NUM_SHAPE)
        w_exp_base = _f32(np.loadtxt(d / "w_exp_base.txt")).reshape(-1, NUM_EXP)
    except ValueError as exc:
        raise MorphableModelError(f"{d}: malformed sparse basis text file ({exc})") from None
    w = _load_pickle(d / "param_whitening.pkl")
    _require(w, ("param_mean", "param_std"), d / "param_whitening.pkl")
    u = None
    if (d / "u_shp.npy").is_file() and (d / "u_exp.npy").is_file():
        u = (_f32(np.load(d / "u_shp.npy")) + _f32(np.load(d / "u_exp.npy"))).reshape(-1)
    return MorphableModel(u_base=u_base, w_shp_base=w_shp_base, w_exp_base=w_exp_base,
                          param_mean=_f32(w["param_mean"]).reshape(-1), param_std=_f32(w["param_std"]).reshape(-1),
                          u=u, source={"layout": "3ddfa_v1", "dir": str(d)})


def load_morphable_model(path: str | Path) -> MorphableModel:
    """Load either layout from a folder: a 3DDFA_V2 checkout (or its ``configs/``) or ``train.configs/``."""
    path = Path(path)
    for cand in (path, path / "configs"):
        if (cand / "bfm_noneck_v3.pkl").is_file():
            return load_3ddfa_v2(cand)
    for cand in (path, path / "train.configs"):
        if (cand / "param_whitening.pkl").is_file():
            return load_3ddfa_v1(cand)
    raise MorphableModelError(
        f"{path}: no morphable model found (expected configs/bfm_noneck_v3.pkl of a 3DDFA_V2 checkout "
        "or train.configs/param_whitening.pkl of 3DDFA v1)")
