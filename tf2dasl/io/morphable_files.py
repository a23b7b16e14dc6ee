"""Morphable-model files → :class:`tf2dasl.geometry.morphable_model.MorphableModel` (the file I/O geometry has not).

Two published layouts:

* **3DDFA_V2** ``configs/``: ``bfm_noneck_v3.pkl`` (``u``, ``w_shp``, ``w_exp``, ``keypoints``), ``tri.pkl`` and
  the whitening ``param_mean_std_62d_120x120.pkl``: dense no-neck bases of 38,365 vertices; when present, the
  texture coordinates ``BFM_UV.mat`` (``UV`` (53215, 2), one row per vertex of the full BFM) mapped to the
  38,365 vertices by ``indices.npy``, as 3DDFA_V2's ``uv.py`` does (optional: :func:`read_uv`).
* **3DDFA v1 / 2DASL** ``train.configs/``: the 68-point sparse bases ``u_base.txt``, ``w_shp_base.txt``,
  ``w_exp_base.txt``, 2DASL's whitening ``param_whitening.pkl`` and the dense mean ``u_shp.npy`` + ``u_exp.npy``
  (a *sparse* model: landmarks, no dense mesh).

Pickles go through the one restricted unpickler (:func:`tf2dasl.io.pickles.load_numpy_pickle`); the parameter
whitening of either project is read by :func:`read_whitening` only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from ..geometry.morphable_model import NUM_EXP, NUM_PARAMS, NUM_SHAPE, MorphableModel, MorphableModelError
from .pickles import load_numpy_pickle

#: the two spellings of a whitening file's keys: 3DDFA_V2 (``mean``/``std``), 3DDFA v1 (``param_mean``/``param_std``)
WHITENING_KEYS = (("mean", "std"), ("param_mean", "param_std"))
V2_BFM, V2_TRI, V2_WHITENING = "bfm_noneck_v3.pkl", "tri.pkl", "param_mean_std_62d_120x120.pkl"
V1_WHITENING = "param_whitening.pkl"
V2_UV, V2_UV_INDICES = "BFM_UV.mat", "indices.npy"


def load_pickle(path: str | Path, error: type[Exception] = MorphableModelError):
    """A 3DDFA ``.pkl`` (numpy arrays only; anything else refused) — one line naming the file on failure."""
    return load_numpy_pickle(path, error)


def read_whitening(path: str | Path, error: type[Exception] = MorphableModelError) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (62,), std (62,))`` float32 from 3DDFA_V2's ``param_mean_std_62d_120x120.pkl`` (``mean``/``std``)
    or 3DDFA v1's ``param_whitening.pkl`` (``param_mean``/``param_std``); ``error`` names the file otherwise."""
    p = Path(path)
    w = load_pickle(p, error)
    if not isinstance(w, dict):
        raise error(f"{p}: expected a dict with mean/std (or param_mean/param_std)")
    for mean_key, std_key in WHITENING_KEYS:
        if mean_key in w and std_key in w:
            mean, std = _f32(w[mean_key]).reshape(-1), _f32(w[std_key]).reshape(-1)
            break
    else:
        raise error(f"{p}: expected keys mean/std or param_mean/param_std")
    if mean.shape != (NUM_PARAMS,) or std.shape != (NUM_PARAMS,):
        raise error(f"{p}: whitening must hold {NUM_PARAMS} means and stds, found {mean.size} and {std.size}")
    return mean, std


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
    bfm_path = configs_dir / V2_BFM
    bfm = load_pickle(bfm_path)
    if not isinstance(bfm, dict):
        raise MorphableModelError(f"{bfm_path}: expected a dict of arrays (u, w_shp, w_exp, keypoints)")
    _require(bfm, ("u", "w_shp", "w_exp", "keypoints"), bfm_path)
    tri_path = configs_dir / V2_TRI
    tri = load_pickle(tri_path) if tri_path.is_file() else bfm.get("tri")
    if tri is None:
        raise MorphableModelError(f"{tri_path}: file not found (and {V2_BFM} holds no 'tri')")
    tri = np.asarray(tri)
    if tri.shape[0] == 3 and tri.shape[1] != 3:
        tri = tri.T
    wpath = Path(whitening) if whitening else configs_dir / V2_WHITENING
    mean, std = read_whitening(wpath)
    u, w_shp, w_exp = _f32(bfm["u"]).reshape(-1), _f32(bfm["w_shp"]), _f32(bfm["w_exp"])
    kp = np.asarray(bfm["keypoints"]).reshape(-1).astype(np.int64)
    uv, uv_note = read_uv(configs_dir, u.size // 3)
    return MorphableModel(
        u_base=u[kp], w_shp_base=w_shp[kp], w_exp_base=w_exp[kp], param_mean=mean, param_std=std,
        u=u, w_shp=w_shp, w_exp=w_exp, landmark_vertices=_landmark_vertices(kp),
        triangles=np.ascontiguousarray(tri.astype(np.int32)), uv=uv,
        source={"layout": "3ddfa_v2", "bfm": str(bfm_path), "whitening": str(wpath), "uv": uv_note})


def read_uv(configs_dir: str | Path, num_vertices: int) -> tuple[np.ndarray | None, str]:
    """3DDFA_V2's texture coordinates for the ``num_vertices`` dense vertices: ``(uv (N, 2) float32 or None, note)``.

    ``BFM_UV.mat`` holds ``UV`` with one ``(u, v)`` row per vertex of the full BFM (53,215; ``v`` up, in
    ``[0, 1]``); ``indices.npy`` picks the no-neck model's vertices from them. Both files absent (or
    ``indices.npy`` alone absent while the UVs need it) gives ``None`` and a note saying so: UVs are optional.
    A file that is present but malformed is a :class:`MorphableModelError` naming it."""
    d = Path(configs_dir)
    uv_path, idx_path = d / V2_UV, d / V2_UV_INDICES
    if not uv_path.is_file():
        return None, f"no UV coordinates ({uv_path} not found)"

    try:
        uv = np.asarray(loadmat(str(uv_path))["UV"], np.float64)
    except KeyError:
        raise MorphableModelError(f"{uv_path}: no 'UV' array (expected 3DDFA_V2's BFM_UV.mat)") from None
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError flavours for damaged files
        raise MorphableModelError(f"{uv_path}: cannot read ({type(exc).__name__}: {exc})") from None
    if uv.ndim != 2 or uv.shape[1] != 2 or not np.all(np.isfinite(uv)):
        raise MorphableModelError(f"{uv_path}: UV must be a finite (M, 2) array, got {uv.shape}")
    if len(uv) != num_vertices:
        if not idx_path.is_file():
            return None, (f"no UV coordinates ({uv_path} has {len(uv)} rows for {num_vertices} vertices and "
                          f"{idx_path}, which maps them, is not found)")
        try:
            idx = np.load(idx_path, allow_pickle=False).reshape(-1)
        except (OSError, ValueError) as exc:
            raise MorphableModelError(f"{idx_path}: cannot read ({exc})") from None
        if idx.shape != (num_vertices,) or not np.issubdtype(idx.dtype, np.integer):
            raise MorphableModelError(f"{idx_path}: expected {num_vertices} integer vertex indices, got "
                                      f"{idx.shape} {idx.dtype}")
        if idx.min() < 0 or idx.max() >= len(uv):
            raise MorphableModelError(f"{idx_path}: indices must be in [0, {len(uv)}) to index {uv_path}")
        uv = uv[idx]
    return _f32(uv), f"UV coordinates from {uv_path}"


def load_3ddfa_v1(train_configs_dir: str | Path) -> MorphableModel:
    """Load 3DDFA v1 / 2DASL's ``train.configs/`` (sparse 68-point bases, 2DASL's whitening)."""
    d = Path(train_configs_dir)
    names = ("u_base.txt", "w_shp_base.txt", "w_exp_base.txt", V1_WHITENING)
    for n in names:
        if not (d / n).is_file():
            raise MorphableModelError(f"{d / n}: file not found (expected a 3DDFA v1 train.configs folder)")
    try:
        u_base = _f32(np.loadtxt(d / "u_base.txt")).reshape(-1)
        w_shp_base = _f32(np.loadtxt(d / "w_shp_base.txt")).reshape(-1, NUM_SHAPE)
        w_exp_base = _f32(np.loadtxt(d / "w_exp_base.txt")).reshape(-1, NUM_EXP)
    except ValueError as exc:
        raise MorphableModelError(f"{d}: malformed sparse basis text file ({exc})") from None
    mean, std = read_whitening(d / V1_WHITENING)
    u = None
    if (d / "u_shp.npy").is_file() and (d / "u_exp.npy").is_file():
        u = (_f32(np.load(d / "u_shp.npy")) + _f32(np.load(d / "u_exp.npy"))).reshape(-1)
    return MorphableModel(u_base=u_base, w_shp_base=w_shp_base, w_exp_base=w_exp_base, param_mean=mean,
                          param_std=std, u=u, source={"layout": "3ddfa_v1", "dir": str(d)})


def load_morphable_model(path: str | Path) -> MorphableModel:
    """Load either layout from a folder: a 3DDFA_V2 checkout (or its ``configs/``) or ``train.configs/``."""
    path = Path(path)
    for cand in (path, path / "configs"):
        if (cand / V2_BFM).is_file():
            return load_3ddfa_v2(cand)
    for cand in (path, path / "train.configs"):
        if (cand / V1_WHITENING).is_file():
            return load_3ddfa_v1(cand)
    raise MorphableModelError(
        f"{path}: no morphable model found (expected configs/{V2_BFM} of a 3DDFA_V2 checkout "
        f"or train.configs/{V1_WHITENING} of 3DDFA v1)")
