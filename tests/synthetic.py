"""Synthetic fixtures the tests build: a small random morphable model written in 3DDFA_V2's layout, a folder of
in-the-wild faces (images + 68-point .pts) drawn from it, and noise photos for the output-folder tests."""
from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np

from tf2dasl.geometry.camera import model_to_crop
from tf2dasl.geometry.morphable_model import MorphableModel
from tf2dasl.geometry.pose import angles_to_matrix, sRt_to_params


def random_morphable_model(n_vertices: int = 300, seed: int = 0) -> MorphableModel:
    """A random dense model whose mean shape is a face-sized blob (~100 units) centred on the origin."""
    rng = np.random.default_rng(seed)
    u = (rng.normal(0, 40, (n_vertices, 3))).astype(np.float32).reshape(-1)
    w_shp = rng.normal(0, 1e-4, (3 * n_vertices, 40)).astype(np.float32)
    w_exp = rng.normal(0, 1.0, (3 * n_vertices, 10)).astype(np.float32)
    lmv = np.sort(rng.choice(n_vertices, 68, replace=False)).astype(np.int32)
    flat = (lmv[:, None] * 3 + np.arange(3)).reshape(-1)
    tri = np.stack([np.arange(n_vertices - 2), np.arange(1, n_vertices - 1), np.arange(2, n_vertices)], 1)
    mean = np.zeros(62, np.float32)
    mean[[0, 5, 10]] = 0.5
    mean[[3, 7]] = 60.0
    std = np.ones(62, np.float32)
    std[:12] = 0.05
    std[[3, 7, 11]] = 5.0
    std[12:52] = 1e4
    return MorphableModel(u_base=u[flat], w_shp_base=w_shp[flat], w_exp_base=w_exp[flat], param_mean=mean,
                          param_std=std, u=u, w_shp=w_shp, w_exp=w_exp, landmark_vertices=lmv,
                          triangles=tri.astype(np.int32))


def write_fake_checkout(root: Path, mm: MorphableModel) -> Path:
    """``root/configs/{bfm_noneck_v3,tri,param_mean_std_62d_120x120}.pkl`` as 3DDFA_V2 lays them out."""
    cfg = root / "configs"
    cfg.mkdir(parents=True, exist_ok=True)
    flat = (mm.landmark_vertices[:, None] * 3 + np.arange(3)).reshape(-1)
    bfm = {"u": mm.u[:, None], "w_shp": mm.w_shp, "w_exp": mm.w_exp, "keypoints": flat.astype(np.int64)}
    with open(cfg / "bfm_noneck_v3.pkl", "wb") as f:
        pickle.dump(bfm, f)
    with open(cfg / "tri.pkl", "wb") as f:
        pickle.dump(mm.triangles.T.copy(), f)
    with open(cfg / "param_mean_std_62d_120x120.pkl", "wb") as f:
        pickle.dump({"mean": mm.param_mean, "std": mm.param_std}, f)
    return root


def write_wild_faces(folder: Path, mm: MorphableModel, n: int = 12, size: int = 160, seed: int = 0) -> Path:
    """``n`` images with a bright dot at each of the 68 landmarks (random poses) and their 1-based ``.pts``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        angles = rng.uniform([-30, -15, -15], [30, 15, 15], (1, 3))
        p = np.zeros((1, 62), np.float32)
        p[0, :12] = sRt_to_params(np.array([0.45]), angles_to_matrix(angles), np.array([[size / 2, size / 2, 0]]))[0]
        lm = model_to_crop(mm.landmarks(p), size)[0, :, :2]
        img = np.full((size, size, 3), 40, np.uint8)
        cv2.circle(img, (size // 2, size // 2), size // 3, (90, 120, 160), -1)
        for x, y in lm:
            cv2.circle(img, (int(round(x)), int(round(y))), 2, (255, 255, 255), -1)
        cv2.imwrite(str(folder / f"face_{i:03d}.png"), img)
        with open(folder / f"face_{i:03d}.pts", "w") as f:
            f.write("version: 1\nn_points:  68\n{\n")
            f.writelines(f"{x + 1:.3f} {y + 1:.3f}\n" for x, y in lm)
            f.write("}\n")
    return folder


def write_labelled_crops(folder: Path, mm: MorphableModel, n: int = 8, seed: int = 1) -> dict:
    """3DDFA's training layout: ``folder/crops/*.png`` (120x120), ``folder/list.txt`` and ``folder/params.npy``
    (N, 62) raw parameters; returns the paths."""
    rng = np.random.default_rng(seed)
    crops = folder / "crops"
    crops.mkdir(parents=True, exist_ok=True)
    names, params = [], []
    for i in range(n):
        angles = rng.uniform([-60, -20, -20], [60, 20, 20], (1, 3))
        p = np.zeros(62, np.float32)
        p[:12] = sRt_to_params(np.array([0.35]), angles_to_matrix(angles), np.array([[60.0, 60.0, 0.0]]))[0]
        p[52:] = rng.normal(0, 1, 10)
        img = np.full((120, 120, 3), 30, np.uint8)
        for x, y in model_to_crop(mm.landmarks(p[None]), 120)[0, :, :2]:
            cv2.circle(img, (int(round(x)), int(round(y))), 1, (255, 255, 255), -1)
        names.append(f"crop_{i:03d}.png")
        cv2.imwrite(str(crops / names[-1]), img)
        params.append(p)
    (folder / "list.txt").write_text("\n".join(names) + "\n")
    np.save(folder / "params.npy", np.stack(params))
    return {"root": crops, "list": folder / "list.txt", "params": folder / "params.npy"}


#: the noise photos of :func:`write_noise_photos`: their size and the face box a test gives for each
PHOTO_H, PHOTO_W = 120, 160
PHOTO_BOX = [20.0, 10.0, 100.0, 90.0]


def write_noise_photos(folder: Path, names=("einstein.png", "curie.png", "bohr.png"), seed: int = 0) -> list[Path]:
    """Small noise photos ``(PHOTO_H, PHOTO_W)`` in ``folder`` (faces come from given boxes: no detection)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for name in names:
        assert cv2.imwrite(str(folder / name), rng.integers(0, 256, (PHOTO_H, PHOTO_W, 3), dtype=np.uint8))
        paths.append(folder / name)
    return paths
