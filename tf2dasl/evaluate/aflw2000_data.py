"""The AFLW2000-3D data as 3DDFA benchmarks it: protocol crops, roi boxes, yaws and the 68-point ground truths.

Laid out as ``../shared/data/aflw2000_3d_dev``: 3DDFA's protocol files (crop list, 120x120 crops, roi boxes,
original and re-annotated landmarks, yaws) and ``AFLW2000/NAME.mat`` (``pt3d_68``, ``Pose_Para`` and the fitted
BFM parameters that :mod:`~tf2dasl.evaluate.dense_truth` reads). ``from_mat`` builds crops from the images and
``.mat`` files for users without the protocol files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.sources import load_mat
from ..geometry.morphable_model import NUM_LANDMARKS
from ..geometry.roi import crop_image, roi_from_landmarks
from .common import DatasetError

PROTOCOL_FILES = {"list": "AFLW2000-3D_crop.list", "roi": "AFLW2000-3D_crop.roi_box.npy",
                  "original": "AFLW2000-3D.pts68.npy", "reannotated": "AFLW2000-3D-Reannotated.pts68.npy",
                  "yaw": "AFLW2000-3D.pose.npy"}
CROP_FOLDER, IMAGE_FOLDER = "AFLW2000-3D_crop", "AFLW2000"
#: The .mat ground truth: ``pt3d_68`` (3, 68) landmarks and ``Pose_Para`` [pitch, yaw, roll, tx, ty, tz, scale]
#: (radians), of which the yaw is item ``POSE_YAW_INDEX``.
MAT_LANDMARKS, MAT_POSE, POSE_YAW_INDEX = "pt3d_68", "Pose_Para", 1
#: Why one unusable AFLW2000-3D file stops the run instead of being skipped.
FIXED_LIST = ("; AFLW2000-3D is scored on its whole face list, so the evaluation stops rather than report NMEs "
              "not comparable with other runs: restore the file from the dataset")


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


def read_aflw_mat(path: Path, pose: bool = False) -> tuple[np.ndarray, float | None]:
    """``pt3d_68`` of an AFLW2000-3D ``.mat`` as ``(68, 3)`` float32 image pixels, and its yaw in degrees from
    ``Pose_Para`` when ``pose``. An unreadable file, a missing key or a wrongly shaped array → one-line
    :class:`DatasetError` naming the file and the key (with :data:`FIXED_LIST`: the protocol stops)."""
    keys = [MAT_LANDMARKS] + ([MAT_POSE] if pose else [])
    m = load_mat(path, keys, error=DatasetError, note=FIXED_LIST)
    for k in keys:
        if k not in m:
            raise DatasetError(f"{path}: no {k} in the .mat file (expected AFLW2000-3D's ground truth){FIXED_LIST}")
    pts = np.asarray(m[MAT_LANDMARKS])
    if pts.shape != (3, NUM_LANDMARKS) or not np.issubdtype(pts.dtype, np.number):
        raise DatasetError(f"{path}: expected {MAT_LANDMARKS} of shape (3, {NUM_LANDMARKS}), found "
                           f"{pts.dtype} {pts.shape}{FIXED_LIST}")
    yaw = None
    if pose:
        pose_para = np.asarray(m[MAT_POSE]).reshape(-1)
        if pose_para.size <= POSE_YAW_INDEX or not np.issubdtype(pose_para.dtype, np.number):
            raise DatasetError(f"{path}: {MAT_POSE} holds no yaw (expected [pitch, yaw, roll, tx, ty, tz, scale])"
                               f"{FIXED_LIST}")
        yaw = float(np.degrees(float(pose_para[POSE_YAW_INDEX])))
    return pts.astype(np.float32).T, yaw


def _read_pt3d(image_dir: Path, names: list[str]) -> np.ndarray | None:
    out = []
    for n in names:
        mat = image_dir / (Path(n).stem + ".mat")
        if not mat.is_file():
            return None
        out.append(read_aflw_mat(mat)[0])
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
    image_dir = _need(d / IMAGE_FOLDER, "image folder", "expected AFLW2000/*.jpg with their .mat files")
    mats = sorted(image_dir.glob("*.mat"))
    if not mats:
        raise DatasetError(f"{image_dir}: no .mat ground-truth files found")
    names, crops, rois, yaws, pt3d = [], [], [], [], []
    for mat in mats:
        jpg = mat.with_suffix(".jpg")
        img = cv2.imread(str(jpg), cv2.IMREAD_COLOR)
        if img is None:
            raise DatasetError(f"{jpg}: cannot read the image of {mat.name} (missing or corrupt){FIXED_LIST}")
        pts, yaw = read_aflw_mat(mat, pose=True)
        roi = roi_from_landmarks(pts[None])[0]
        names.append(jpg.name)
        crops.append(crop_image(img, roi, size))
        rois.append(roi)
        yaws.append(yaw)
        pt3d.append(pts)
    pt3d_arr = np.stack(pt3d)
    gt = {"original": pt3d_arr[..., :2]}
    re_path = d / PROTOCOL_FILES["reannotated"]
    list_path = d / PROTOCOL_FILES["list"]
    if re_path.is_file() and list_path.is_file():
        listed = [ln.strip() for ln in list_path.read_text().splitlines() if ln.strip()]
        try:
            re = np.load(re_path).astype(np.float32)[:, :2].transpose(0, 2, 1)
        except (ValueError, OSError, IndexError) as exc:
            raise DatasetError(f"{re_path}: cannot read the re-annotated ground truth ({exc}); restore it, or "
                               "move it away to score against the original ground truth only") from None
        if sorted(listed) == sorted(names) and len(re) == len(listed):
            order = {n: i for i, n in enumerate(listed)}
            gt["reannotated"] = re[[order[n] for n in names]]
    return Aflw2000(names, np.stack(crops), np.stack(rois), np.array(yaws, np.float32), gt, pt3d_arr,
                    {"dir": str(d), "crops": "from_mat"})
