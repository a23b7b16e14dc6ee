"""Dense ground truth of AFLW2000-3D: the fitted BFM parameters of its ``.mat`` files as meshes on the model's topology.

Each ``AFLW2000/NAME.mat`` holds ``Shape_Para`` (199), ``Exp_Para`` (29) and ``Pose_Para`` [pitch, yaw, roll,
tx, ty, tz, s]. 3DDFA's 40 shape / 10 expression bases take the leading 40 / 10 coefficients, so the mesh is
``V = u + w_shp @ Shape_Para[:40] + w_exp @ Exp_Para[:10]`` posed as ``s * R @ V + t`` with
``R = Rx(pitch) @ Ry(yaw) @ Rz(roll)`` in 300W-LP's ``RotationMatrix.m`` convention (:func:`rotation_300wlp`),
then ``y = H + 1 - y`` (``H`` = 450, the images' height): the frame of ``pt3d_68``.

The truncation costs accuracy: on the 200-face dev slice the mesh's 68 keypoints lie 0.90 % from ``pt3d_68``
(bbox-normalised 2D NME, mean; max 1.93 %), mostly on the brows. :attr:`DenseTruth.floor` measures it per
face: it is the floor of every dense figure measured against this ground truth, reported beside them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.sources import load_mat
from ..geometry.morphable_model import NUM_EXP, NUM_SHAPE
from .aflw2000_data import FIXED_LIST, IMAGE_FOLDER, MAT_POSE, Aflw2000
from .common import DatasetError
from .metrics import box_size, nme_bbox

#: the .mat keys of the fitted parameters, and how many coefficients 3DDFA's bases take of each
MAT_SHAPE, MAT_EXP = "Shape_Para", "Exp_Para"
#: Pose_Para's length: [pitch, yaw, roll, tx, ty, tz, scale]
NUM_POSE_PARA = 7
#: AFLW2000-3D's images are 450 x 450; its ground truth flips y as ``y = AFLW2000_HEIGHT + 1 - y``
AFLW2000_HEIGHT = 450
#: a mean keypoint floor above this (%) means the morphable model is not the BFM the .mat files were fitted with
FLOOR_LIMIT = 5.0


def rotation_300wlp(angles: np.ndarray) -> np.ndarray:
    """``(N, 3)`` [pitch, yaw, roll] radians → ``(N, 3, 3)`` ``Rx @ Ry @ Rz`` as 300W-LP's ``RotationMatrix.m``:
    ``Rx = [[1,0,0],[0,c,s],[0,-s,c]]``, ``Ry = [[c,0,-s],[0,1,0],[s,0,c]]``, ``Rz = [[c,s,0],[-s,c,0],[0,0,1]]``."""
    a = np.asarray(angles, np.float64).reshape(-1, 3)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones(len(a)), np.zeros(len(a))
    rx = np.stack([one, zero, zero, zero, c[:, 0], s[:, 0], zero, -s[:, 0], c[:, 0]], 1).reshape(-1, 3, 3)
    ry = np.stack([c[:, 1], zero, -s[:, 1], zero, one, zero, s[:, 1], zero, c[:, 1]], 1).reshape(-1, 3, 3)
    rz = np.stack([c[:, 2], s[:, 2], zero, -s[:, 2], c[:, 2], zero, zero, zero, one], 1).reshape(-1, 3, 3)
    return rx @ ry @ rz


def read_aflw_fit(path: Path) -> np.ndarray:
    """The fitted parameters of one AFLW2000-3D ``.mat``: ``(57,)`` float64 = ``Shape_Para[:40]``,
    ``Exp_Para[:10]``, ``Pose_Para`` (7). A missing key or a short array → one-line :class:`DatasetError`."""
    keys = (MAT_SHAPE, MAT_EXP, MAT_POSE)
    m = load_mat(path, keys, error=DatasetError, note=FIXED_LIST)
    parts = []
    for key, n in zip(keys, (NUM_SHAPE, NUM_EXP, NUM_POSE_PARA)):
        a = np.asarray(m.get(key, np.zeros(0))).reshape(-1)
        if a.size < n or not np.issubdtype(a.dtype, np.number):
            raise DatasetError(f"{path}: {key} must hold at least {n} numbers (AFLW2000-3D's fitted BFM parameters), "
                               f"found {a.dtype} of {a.size}{FIXED_LIST}")
        parts.append(a[:n].astype(np.float64))
    return np.concatenate(parts)


@dataclass
class DenseTruth:
    """Dense ground truth of an :class:`~tf2dasl.evaluate.aflw2000.Aflw2000` set for a morphable model ``mm``.

    ``fits (N, 57)``: per face ``Shape_Para[:40]``, ``Exp_Para[:10]``, ``Pose_Para``; ``norm (N,)``: sqrt(w*h) of
    ``pt3d_68``'s 2D box (the dense metrics' normaliser); ``floor (N,)``: the 2D NME (fraction) of the truncated
    mesh's 68 keypoints against ``pt3d_68``."""

    mm: object
    fits: np.ndarray
    norm: np.ndarray
    floor: np.ndarray
    _bases: dict = field(default_factory=dict, repr=False)

    def _float64(self, *names) -> list[np.ndarray]:
        """The model's arrays as float64, bases transposed to ``(K, 3N)`` (converted once, then reused)."""
        for n in names:
            if n not in self._bases:
                a = np.asarray(getattr(self.mm, n), np.float64)
                self._bases[n] = np.ascontiguousarray(a.T if a.ndim == 2 else a)
        return [self._bases[n] for n in names]

    def _posed(self, names, idx) -> np.ndarray:
        u, w_shp_t, w_exp_t = self._float64(*names)
        f = self.fits[idx]
        flat = u[None] + f[:, :NUM_SHAPE] @ w_shp_t + f[:, NUM_SHAPE:NUM_SHAPE + NUM_EXP] @ w_exp_t
        pose = f[:, NUM_SHAPE + NUM_EXP:]
        R = rotation_300wlp(pose[:, :3]) * pose[:, 6, None, None]
        v = flat.reshape(len(f), -1, 3) @ np.transpose(R, (0, 2, 1)) + pose[:, None, 3:6]
        v[..., 1] = AFLW2000_HEIGHT + 1 - v[..., 1]
        return v

    def vertices(self, idx) -> np.ndarray:
        """Ground-truth meshes ``(B, V, 3)`` float64 image pixels of the faces ``idx``."""
        return self._posed(("u", "w_shp", "w_exp"), idx)

    def keypoints(self, idx) -> np.ndarray:
        """The meshes' 68 landmark vertices ``(B, 68, 3)`` (from the model's keypoint bases: no dense product)."""
        return self._posed(("u_base", "w_shp_base", "w_exp_base"), idx)


def load_dense_truth(data: Aflw2000, mm) -> DenseTruth:
    """Read every face's fitted parameters from ``DIR/AFLW2000/NAME.mat`` for the dense morphable model ``mm``
    (3DDFA's BFM bases: ``u``, ``w_shp``, ``w_exp`` and the 68 keypoint bases). Missing ``.mat`` files, a
    sparse model or a model whose keypoints land far from ``pt3d_68`` → one-line errors."""
    if not getattr(mm, "is_dense", False):
        raise DatasetError("dense metrics need a dense morphable model (3DDFA_V2's bfm_noneck_v3 layout); this one "
                           "has only 68-point bases")
    image_dir = Path(data.source.get("dir", ".")) / IMAGE_FOLDER
    if data.pt3d is None or not image_dir.is_dir():
        raise DatasetError(f"{image_dir}: dense metrics need AFLW2000-3D's .mat files (Shape_Para, Exp_Para, "
                           "Pose_Para, pt3d_68) next to the protocol files")
    fits = np.stack([read_aflw_fit(image_dir / (Path(n).stem + ".mat")) for n in data.names])
    truth = DenseTruth(mm, fits, box_size(data.pt3d), np.zeros(len(fits)))
    all_faces = np.arange(len(fits))
    truth.floor = nme_bbox(truth.keypoints(all_faces)[..., :2], data.pt3d[..., :2])
    if truth.floor.mean() * 100 > FLOOR_LIMIT:
        raise DatasetError(f"the morphable model's keypoints from the .mat parameters lie {truth.floor.mean() * 100:.1f}% "
                           f"from pt3d_68 (expected about 0.9%): its bases are not 3DDFA's BFM ones that AFLW2000-3D's "
                           "Shape_Para/Exp_Para fit; use a model with 3DDFA_V2's bfm_noneck_v3 bases")
    return truth
