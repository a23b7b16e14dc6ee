"""Accuracy protocols: AFLW2000-3D as 3DDFA benchmarks it, and 68-point NME on 300-W style faces.

AFLW2000-3D protocol (3DDFA's ``benchmark_aflw2000.py``): predict on the 120x120 protocol crops, map the
68 landmarks to the image through each crop's roi box, NME = mean point error / sqrt(w * h) of the ground
truth's landmark box, in percent, averaged per |yaw| bin [0, 30], (30, 60], (60, 90] and then over the
three bins (the "balanced" mean). Two ground truths: AFLW2000-3D's original ``pt3d_68`` and the
re-annotated 2D landmarks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .geometry.camera import crop_to_image
from .geometry.roi import crop_image, roi_from_landmarks
from .errors import UserError

YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))
BIN_NAMES = ("yaw_0_30", "yaw_30_60", "yaw_60_90")
PROTOCOL_FILES = {"list": "AFLW2000-3D_crop.list", "roi": "AFLW2000-3D_crop.roi_box.npy",
                  "original": "AFLW2000-3D.pts68.npy", "reannotated": "AFLW2000-3D-Reannotated.pts68.npy",
                  "yaw": "AFLW2000-3D.pose.npy"}
CROP_FOLDER, IMAGE_FOLDER = "AFLW2000-3D_crop", "AFLW2000"

#: Predictions are 3D landmarks in crop pixels ``(B, 68, 3)`` from uint8 crops ``(B, S, S, 3)``.
LandmarkFn = Callable[[np.ndarray], np.ndarray]


class DatasetError(UserError):
    """A dataset folder is missing or lacks a file the protocol needs (one line naming it and the fix)."""


@dataclass
class Aflw2000:
    """The protocol's data: ``crops (N, S, S, 3)`` uint8 BGR, ``roi_boxes (N, 4)``, ``yaws (N,)`` degrees and
    ground truths by name, each ``(N, 68, 2)`` image pixels; ``pt3d (N, 68, 3)`` when the .mat files are there."""

    names: list[str]
    crops: np.ndarray
    roi_boxes: np.ndarray
    yaws: np.ndarray
    ground_truth: dict[str, np.ndarray]
    pt3d: np.ndarray | None = None
    source: dict = field(default_factory=dict)


def _need(path: Path, what: str, fix: str) -> Path:
    if not path.exists():
        raise DatasetError(f"{path}: {what} not found; {fix}")
    return path


def _read_crop(path: Path, size: int) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: cannot read the protocol crop (missing or corrupt)")
    if img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    return img


def _read_pt3d(image_dir: Path, names: list[str]) -> np.ndarray | None:
    import scipy.io as sio

    out = []
    for n in names:
        mat = image_dir / (Path(n).stem + ".mat")
        if not mat.is_file():
            return None
        out.append(np.asarray(sio.loadmat(str(mat))["pt3d_68"], np.float32).T)
    return np.stack(out)


def load_aflw2000(data_dir: str | Path, size: int = 120, from_mat: bool = False) -> Aflw2000:
    """Load AFLW2000-3D laid out as ``../shared/data/aflw2000_3d_dev``.

    ``from_mat=True`` builds crops from the images and their ``.mat`` ground truth (``pt3d_68``) for users
    without 3DDFA's protocol files: roi boxes from the landmarks (3DDFA_V2's ``parse_roi_box_from_landmark``)
    and yaw from ``Pose_Para``; only the original ground truth is then available (plus the re-annotated one
    if its protocol file is present).
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise DatasetError(f"{d}: dataset folder not found (expected AFLW2000-3D laid out as 3DDFA's benchmark)")
    if from_mat:
        return _load_from_mat(d, size)
    fix = "it is one of 3DDFA's AFLW2000-3D protocol files; or pass --from-mat to build crops from the .mat files"
    paths = {k: _need(d / v, "protocol file", fix) for k, v in PROTOCOL_FILES.items()}
    names = [ln.strip() for ln in paths["list"].read_text().splitlines() if ln.strip()]
    crop_dir = _need(d / CROP_FOLDER, "crop folder", fix)
    try:
        roi = np.load(paths["roi"]).astype(np.float32)
        gt = {"original": np.load(paths["original"]).astype(np.float32)[:, :2].transpose(0, 2, 1),
              "reannotated": np.load(paths["reannotated"]).astype(np.float32)[:, :2].transpose(0, 2, 1)}
        yaws = np.load(paths["yaw"]).astype(np.float32).reshape(-1)
    except (ValueError, OSError) as exc:
        raise DatasetError(f"{d}: cannot read a protocol .npy file ({exc})") from None
    for what, arr in [("roi boxes", roi), ("yaws", yaws)] + list(gt.items()):
        if len(arr) != len(names):
            raise DatasetError(f"{d}: {what} hold {len(arr)} faces but {PROTOCOL_FILES['list']} lists {len(names)}")
    crops = np.stack([_read_crop(crop_dir / n, size) for n in names])
    pt3d = _read_pt3d(d / IMAGE_FOLDER, names) if (d / IMAGE_FOLDER).is_dir() else None
    return Aflw2000(names, crops, roi, yaws, gt, pt3d, {"dir": str(d), "crops": "protocol"})


def _load_from_mat(d: Path, size: int) -> Aflw2000:
    import scipy.io as sio

    image_dir = _need(d / IMAGE_FOLDER, "image folder", "expected AFLW2000/*.jpg with their .mat files")
    mats = sorted(image_dir.glob("*.mat"))
    if not mats:
        raise DatasetError(f"{image_dir}: no .mat ground-truth files found")
    names, crops, rois, yaws, pt3d = [], [], [], [], []
    for mat in mats:
        jpg = mat.with_suffix(".jpg")
        img = cv2.imread(str(jpg), cv2.IMREAD_COLOR)
        if img is None:
            raise DatasetError(f"{jpg}: cannot read the image of {mat.name}")
        m = sio.loadmat(str(mat))
        pts = np.asarray(m["pt3d_68"], np.float32).T
        roi = roi_from_landmarks(pts[None])[0]
        names.append(jpg.name)
        crops.append(crop_image(img, roi, size))
        rois.append(roi)
        yaws.append(np.degrees(float(np.asarray(m["Pose_Para"]).reshape(-1)[1])))
        pt3d.append(pts)
    pt3d_arr = np.stack(pt3d)
    gt = {"original": pt3d_arr[..., :2]}
    re_path = d / PROTOCOL_FILES["reannotated"]
    list_path = d / PROTOCOL_FILES["list"]
    if re_path.is_file() and list_path.is_file():
        listed = [ln.strip() for ln in list_path.read_text().splitlines() if ln.strip()]
        re = np.load(re_path).astype(np.float32)[:, :2].transpose(0, 2, 1)
        if sorted(listed) == sorted(names) and len(re) == len(listed):
            order = {n: i for i, n in enumerate(listed)}
            gt["reannotated"] = re[[order[n] for n in names]]
    return Aflw2000(names, np.stack(crops), np.stack(rois), np.array(yaws, np.float32), gt, pt3d_arr,
                    {"dir": str(d), "crops": "from_mat"})


# ---------------------------------------------------------------------------- metrics
def nme_bbox(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-face NME ``(N,)`` (fraction): mean point distance ``(N, 68, D)`` over sqrt(w*h) of gt's 2D box."""
    gt = np.asarray(gt, np.float64)
    pred = np.asarray(pred, np.float64)
    wh = gt[..., :2].max(axis=1) - gt[..., :2].min(axis=1)
    norm = np.sqrt(wh[:, 0] * wh[:, 1])
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=1) / norm


def nme_interocular(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """300-W's NME ``(N,)`` (fraction): mean 2D error over the outer-eye-corner distance (points 36 and 45)."""
    gt = np.asarray(gt, np.float64)[..., :2]
    d = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
    return np.linalg.norm(np.asarray(pred, np.float64)[..., :2] - gt, axis=-1).mean(axis=1) / d


def yaw_table(nme: np.ndarray, yaws: np.ndarray) -> dict[str, float]:
    """Per-face NME (fraction) → percent per |yaw| bin and their balanced mean (3DDFA's ``ana``)."""
    a = np.abs(np.asarray(yaws))
    masks = (a <= 30, (a > 30) & (a <= 60), a > 60)
    out = {name: float(np.mean(nme[m]) * 100) if m.any() else float("nan") for name, m in zip(BIN_NAMES, masks)}
    out["mean"] = float(np.nanmean([out[n] for n in BIN_NAMES]))
    return out


def evaluate_aflw2000(data: Aflw2000, landmarks_fn: LandmarkFn, size: int = 120) -> dict:
    """Run the protocol: ``landmarks_fn`` maps crops ``(B, S, S, 3)`` uint8 to crop-pixel landmarks ``(B, 68, 3)``."""
    lm_crop = np.asarray(landmarks_fn(data.crops), np.float32)
    lm_img = crop_to_image(lm_crop, data.roi_boxes, size)
    result = {"faces": int(len(data.names)),
              "bins": {n: int(c) for n, c in zip(BIN_NAMES, _bin_counts(data.yaws))},
              "nme_2d_68": {k: yaw_table(nme_bbox(lm_img[..., :2], gt), data.yaws)
                            for k, gt in data.ground_truth.items()}}
    if data.pt3d is not None:
        result["nme_3d_68"] = {"original": yaw_table(nme_3d(lm_img, data.pt3d), data.yaws)}
    return result


#: AFLW2000-3D's ``pt3d_68`` z grows towards the camera like ours (checked on the dev slice: centred
#: predicted and ground-truth z of the imported mb05 correlate at +0.99), so no flip.
PT3D_Z_SIGN = 1.0


def nme_3d(pred: np.ndarray, pt3d: np.ndarray) -> np.ndarray:
    """3D 68-point NME ``(N,)`` (fraction): z of both sides centred on their mean (depth has no absolute origin),
    ground-truth z in our convention (``PT3D_Z_SIGN``), normalised by sqrt(w*h) of the ground truth's 2D box."""
    gt = np.array(pt3d, np.float64)
    gt[..., 2] *= PT3D_Z_SIGN
    p = np.array(pred, np.float64)
    gt[..., 2] -= gt[..., 2].mean(axis=1, keepdims=True)
    p[..., 2] -= p[..., 2].mean(axis=1, keepdims=True)
    return nme_bbox(p, gt)


def _bin_counts(yaws):
    a = np.abs(np.asarray(yaws))
    return [int(((a <= 30)).sum()), int(((a > 30) & (a <= 60)).sum()), int((a > 60).sum())]


def format_table(result: dict) -> str:
    """A printable table of an :func:`evaluate_aflw2000` result."""
    counts = result["bins"]
    head = f"{'NME (%)':<26}" + "".join(f"{n + ' (' + str(counts[n]) + ')':>17}" for n in BIN_NAMES) + f"{'mean':>9}"
    rows = [head, "-" * len(head)]
    for metric in ("nme_2d_68", "nme_3d_68"):
        for gt_name, t in result.get(metric, {}).items():
            label = f"{metric[4:6]} 68 pts, {gt_name}"
            rows.append(f"{label:<26}" + "".join(f"{t[n]:>17.3f}" for n in BIN_NAMES) + f"{t['mean']:>9.3f}")
    return "\n".join(rows)
