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

from .data.sources import NUM_LANDMARKS, list_pts_faces
from .errors import UserError
from .geometry.camera import crop_to_image
from .geometry.roi import crop_image, roi_from_landmarks

YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))
BIN_NAMES = ("yaw_0_30", "yaw_30_60", "yaw_60_90")
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


def read_aflw_mat(path: Path, pose: bool = False) -> tuple[np.ndarray, float | None]:
    """``pt3d_68`` of an AFLW2000-3D ``.mat`` as ``(68, 3)`` float32 image pixels, and its yaw in degrees from
    ``Pose_Para`` when ``pose``. An unreadable file, a missing key or a wrongly shaped array → one-line
    :class:`DatasetError` naming the file and the key (with :data:`FIXED_LIST`: the protocol stops)."""
    from .data.sources import load_mat

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


# ---------------------------------------------------------------------------- the model under test
#: ``passes`` of a 4-channel (2DASL) Keras model: 1 = empty landmark map only, 2 = then the map of the first
#: pass's landmarks (:meth:`tf2dasl.model.FaceModel.predict_params`; exported graphs always run both).
PASSES = (1, 2)
#: input channels of a 2DASL model: the colour crop and its landmark map (the only models with passes)
MAP_MODEL_CHANNELS = 4


def landmarks_fn(runtime: str = "keras", model=None, export_dir=None, variant: str | None = None,
                 passes: int | None = None) -> tuple[str, LandmarkFn]:
    """``(name, fn)``: the model under test as a :data:`LandmarkFn` for :func:`evaluate_aflw2000`.

    ``runtime="keras"`` runs ``model`` (a model directory or a loaded :class:`tf2dasl.model.FaceModel`), with
    ``passes`` (:data:`PASSES`, 4-channel models only; None: the model's default). ``savedmodel``, ``tflite``
    and ``onnx`` run the export in ``export_dir`` (``variant``: TFLite only). A setting the chosen runtime
    would ignore is refused (:class:`UserError`, one line) rather than silently dropped."""
    from .runtimes import DEFAULT_VARIANT, RUNTIMES, load_runtime, require_export_dir

    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if variant is not None and runtime != "tflite":
        raise UserError(f"--variant applies to --runtime tflite; --runtime {runtime} has no variants (drop --variant)")
    if passes is not None and passes not in PASSES:
        raise UserError(f"--passes {passes}: use one of {', '.join(map(str, PASSES))}")
    if runtime == "keras":
        if export_dir:
            raise UserError("--export-dir applies to --runtime savedmodel|tflite|onnx; --runtime keras runs the "
                            "model directory given by --model (drop --export-dir, or name the export's runtime)")
        if model is None or model == "":
            raise UserError("--model MODEL_DIR is required with --runtime keras")
        if isinstance(model, (str, Path)):
            from . import load_model

            model = load_model(model)
        if passes is not None and model.spec.channels != MAP_MODEL_CHANNELS:
            raise UserError(f"--passes applies to {MAP_MODEL_CHANNELS}-channel (2DASL) models; {model.spec.name} takes "
                            f"{model.spec.channels}-channel crops and always runs one pass (drop --passes)")
        kw = {} if passes is None else {"passes": passes}
        return model.spec.name, lambda crops: model.landmarks_crop(model.predict_params(crops, **kw))
    if model is not None and model != "":
        raise UserError(f"--model applies to --runtime keras; --runtime {runtime} runs the export in --export-dir "
                        "alone (drop --model)")
    if passes is not None:
        raise UserError("--passes applies to --runtime keras; exported artifacts always run the model's own passes "
                        "(drop --passes)")
    rt = load_runtime(runtime, require_export_dir(runtime, export_dir),
                      variant=DEFAULT_VARIANT if variant is None else variant)
    return rt.name, rt.landmarks_crop


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


# ---------------------------------------------------------------------------- 300-W through the full pipeline
#: Detector mode: a detection finds the labelled face when its box has IoU >= MATCH_IOU with the bounding
#: box of the 68 ground-truth landmarks, or contains that box's centre; among such detections the one with
#: the highest IoU is taken (benchmarks/detection_rate.py uses the same rule).
MATCH_IOU = 0.3
#: 300-W's failure threshold on the inter-ocular NME (fraction), also the upper limit of the CED's AUC.
FAILURE_NME = 0.08
BOX_MODES = ("detector", "oracle")


def match_labelled_face(boxes: np.ndarray, landmarks: np.ndarray) -> int | None:
    """Index of the box ``(F, 4)`` ``[x0, y0, x1, y1]`` that finds the face labelled ``landmarks (68, 2)``
    by the :data:`MATCH_IOU` rule, or None."""
    lm = np.asarray(landmarks, np.float64)[:, :2]
    return match_box(boxes, np.concatenate([lm.min(0), lm.max(0)]))


def match_box(boxes: np.ndarray, gt: np.ndarray) -> int | None:
    """Index of the box ``(F, 4)`` that finds the ground-truth box ``gt (4,)``: IoU >= :data:`MATCH_IOU` or
    containing its centre, the highest IoU first; None when no box does."""
    from .detect.base import box_iou

    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return None
    gt = np.asarray(gt, np.float64)
    iou = box_iou(boxes, gt[None])[:, 0]
    cx, cy = (gt[0] + gt[2]) / 2, (gt[1] + gt[3]) / 2
    inside = (boxes[:, 0] <= cx) & (cx <= boxes[:, 2]) & (boxes[:, 1] <= cy) & (cy <= boxes[:, 3])
    ok = (iou >= MATCH_IOU) | inside
    if not ok.any():
        return None
    return int(np.argmax(np.where(ok, iou, -1.0)))


def load_300w_faces(data_dirs, list_file: str | Path | None = None, failures: list | None = None) -> list:
    """The labelled faces (:class:`tf2dasl.data.sources.FaceSample`, 0-based landmarks) of 300-W style folders
    (images + 68-point ``.pts``, not recursive), restricted to the image paths listed in ``list_file`` (one per
    line, e.g. a training run's ``RUN_DIR/holdout.txt``) when given. A listed path matches a face when both
    resolve to the same file, or else when their last two components (``folder/name``) agree, so a list
    written from another working directory still works. Missing folders, folders without ``.pts`` and listed
    images not found in the folders raise :class:`DatasetError` / :class:`UserError` (one line).

    A malformed ``.pts`` raises too, unless ``failures`` is a list: then ``(image_path, reason)`` is appended
    to it (for the selected images only) and that face is left out."""
    found: list = []
    faces = list_pts_faces(data_dirs, found if failures is not None else None)
    if list_file is None:
        if failures is not None:
            failures.extend(found)
        return faces
    lf = Path(list_file)
    if not lf.is_file():
        raise DatasetError(f"{lf}: list file not found (expected one image path per line, like RUN_DIR/holdout.txt)")
    listed = [ln.strip() for ln in lf.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not listed:
        raise DatasetError(f"{lf}: the list is empty")
    # labelled images: a FaceSample, or the (image_path, reason) of a .pts that could not be read
    items = [(f.image_path, f) for f in faces] + [(fail[0], fail) for fail in found]
    by_path = {str(Path(path).resolve()): item for path, item in items}
    by_tail: dict[tuple[str, str], list] = {}
    for path, item in items:
        p = Path(path)
        by_tail.setdefault((p.parent.name, p.name), []).append(item)
    out, missing, seen = [], [], set()
    for entry in listed:
        p = Path(entry)
        item = by_path.get(str(p.resolve()))
        if item is None:
            cands = by_tail.get((p.parent.name, p.name), [])
            item = cands[0] if len(cands) == 1 else None
        if item is None:
            missing.append(entry)
        elif id(item) not in seen:
            seen.add(id(item))
            if isinstance(item, tuple):
                failures.append(item)
            else:
                out.append(item)
    if missing:
        raise DatasetError(f"{lf}: {len(missing)} of {len(listed)} listed images are not labelled faces of the "
                           f"--data folders (first: {missing[0]}); pass the folders the list was made from")
    return out


def ced_auc(nme: np.ndarray, limit: float = FAILURE_NME, steps: int = 1000) -> float:
    """Area under the cumulative error distribution of per-face NMEs ``(N,)`` (fractions; inf for a miss)
    from 0 to ``limit``, divided by ``limit`` (1.0: every face error-free)."""
    e = np.sort(np.asarray(nme, np.float64))
    if e.size == 0:
        return float("nan")
    x = np.linspace(0.0, limit, steps + 1)
    y = np.searchsorted(e, x, side="right") / e.size
    return float(np.trapezoid(y, x) / limit) if hasattr(np, "trapezoid") else float(np.trapz(y, x) / limit)


def evaluate_300w(data_dirs, model, boxes: str = "detector", detector: str | None = None, assets_dir=None,
                  list_file: str | Path | None = None, detector_options: dict | None = None,
                  progress: bool = False) -> dict:
    """68-point NME with 300-W's outer inter-ocular normalisation (:func:`nme_interocular`) through the full
    :class:`tf2dasl.reconstruct.Reconstructor` on folders of images + ``.pts`` (see :func:`load_300w_faces`).

    ``boxes="detector"``: each image goes through the whole pipeline (detect → roi → regress → refined roi →
    regress); the face matching the labelled one (:func:`match_labelled_face`) is scored, and an image where
    none matches is a miss (detection rate). ``boxes="oracle"``: the crop is 3DDFA_V2's
    ``parse_roi_box_from_landmark`` of the ground-truth landmarks and the model regresses once (no detector,
    no refinement; a 4-channel model still makes its own landmark maps: the ground truth is never fed to it).

    ``model`` is a model directory or a loaded :class:`tf2dasl.model.FaceModel`. Returns a JSON-ready dict:
    counts, ``detection_rate`` (%), ``nme_68_interocular`` ``{"mean", "median"}`` (%, over found faces),
    ``failure_rate_8`` (% of all labelled faces with NME > 8% or missed) and ``failure_rate_8_found`` (% of
    found faces), ``auc_8`` (CED area to 8%, misses count as failures), per-folder means, the missed images
    and every face's NME.

    A labelled image that cannot be scored (unreadable image, malformed ``.pts``) does not stop the run: it is
    left out of every figure and listed in ``errors`` as ``{"image", "error"}`` (the reason names the file).
    ``detector`` (None: ``auto``), ``assets_dir`` and ``detector_options`` apply to ``boxes="detector"`` only;
    given with ``boxes="oracle"`` they are refused (:class:`UserError`) rather than ignored.
    """
    import time

    from tqdm import tqdm

    from .io.images import ImageError, read_image
    from .reconstruct import Reconstructor

    if boxes not in BOX_MODES:
        raise UserError(f"--boxes {boxes!r}: use one of {', '.join(BOX_MODES)}")
    if boxes == "oracle":
        given = [flag for flag, value in (("--detector", detector), ("--assets", assets_dir),
                                          ("detector options", detector_options)) if value]
        if given:
            one = len(given) == 1
            raise UserError(f"{' and '.join(given)} {'applies' if one else 'apply'} to --boxes detector; --boxes "
                            "oracle crops from the ground-truth landmarks with no detector "
                            f"(drop {'it' if one else 'them'})")
    errors: list[tuple[str, str]] = []
    faces = load_300w_faces(data_dirs, list_file, failures=errors)
    if isinstance(model, (str, Path)):
        from . import load_model

        model = load_model(model)
    if boxes == "detector":
        from .api import make_reconstructor

        rec = make_reconstructor(model, detector, assets_dir, detector_options)
        det_name = rec.detector.name if hasattr(rec.detector, "name") else str(detector)
    else:
        rec, det_name = Reconstructor(model, None), None
    per_face, missed = [], []
    t0 = time.perf_counter()
    for face in tqdm(faces, desc=f"300-W ({boxes})", unit="face", disable=not progress):
        try:
            image = read_image(face.image_path)
        except ImageError as exc:
            errors.append((face.image_path, str(exc)))
            continue
        gt = face.landmarks
        if boxes == "oracle":
            _, lm = rec.regress(image, roi_from_landmarks(gt[None]))
            pred = lm[0]
        else:
            found = rec(image)
            k = match_labelled_face(np.stack([f.bbox for f in found]) if found else np.zeros((0, 4)), gt)
            if k is None:
                missed.append(face.image_path)
                per_face.append({"image": face.image_path, "nme": None})
                continue
            pred = found[k].landmarks_2d
        nme = float(nme_interocular(pred[None], gt[None])[0])
        per_face.append({"image": face.image_path, "nme": round(nme * 100, 4)})
    seconds = time.perf_counter() - t0
    n = len(per_face)
    errs = np.array([f["nme"] / 100 if f["nme"] is not None else np.inf for f in per_face])
    ok = np.isfinite(errs)
    folders: dict[str, list] = {}
    for f, e in zip(per_face, errs):
        folders.setdefault(str(Path(f["image"]).parent), []).append(e)
    pct = lambda a: float(a * 100) if np.isfinite(a) else float("nan")  # noqa: E731
    return _nan_to_none({
        "benchmark": "300w", "normalisation": "outer inter-ocular (points 36, 45)", "boxes": boxes,
        "detector": det_name, "model": model.spec.name,
        "data": [str(d) for d in ([data_dirs] if isinstance(data_dirs, (str, Path)) else data_dirs)],
        "list": None if list_file is None else str(list_file),
        "faces": n, "found": int(ok.sum()), "detection_rate": 100.0 * ok.sum() / max(n, 1),
        "match_rule": (f"a detection box with IoU >= {MATCH_IOU} with the 68-landmark box or containing its "
                       "centre (highest IoU)") if boxes == "detector" else None,
        "nme_68_interocular": {"mean": pct(errs[ok].mean()) if ok.any() else float("nan"),
                               "median": pct(np.median(errs[ok])) if ok.any() else float("nan")},
        "failure_rate_8": 100.0 * float((errs > FAILURE_NME).mean()) if n else float("nan"),
        "failure_rate_8_found": 100.0 * float((errs[ok] > FAILURE_NME).mean()) if ok.any() else float("nan"),
        "auc_8": ced_auc(errs),
        "per_folder": {k: {"faces": len(v), "found": int(np.isfinite(v).sum()),
                           "nme_mean": pct(np.mean([x for x in v if np.isfinite(x)])) if np.isfinite(v).any()
                           else float("nan")} for k, v in folders.items()},
        "seconds": round(seconds, 2), "ms_per_face": round(1000 * seconds / max(n, 1), 2),
        "missed": missed, "errors": [{"image": path, "error": reason} for path, reason in errors],
        "per_face": per_face,
    })


def _none_to_nan(obj):
    if isinstance(obj, dict):
        return {k: (float("nan") if v is None and k not in ("list", "detector", "match_rule") else _none_to_nan(v))
                for k, v in obj.items() if k != "per_face"}
    return obj


def _nan_to_none(obj):
    """NaN (e.g. the NME of an empty set) → None, so the JSON is strict."""
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def format_300w(result: dict) -> str:
    """Printable lines of an :func:`evaluate_300w` result."""
    r = _none_to_nan(result)
    how = f"detector {r['detector']}" if r["boxes"] == "detector" else "oracle crops from the ground-truth landmarks"
    lines = [f"300-W ({r['faces']} faces{', listed in ' + r['list'] if r['list'] else ''}"
             f"{', ' + str(len(r['errors'])) + ' not scored' if r.get('errors') else ''}), model {r['model']}, {how}",
             f"  NME 68 pts, outer inter-ocular (%): mean {r['nme_68_interocular']['mean']:.3f}, "
             f"median {r['nme_68_interocular']['median']:.3f} (over {r['found']} faces)"]
    if r["boxes"] == "detector":
        lines += [f"  detection rate: {r['found']}/{r['faces']} = {r['detection_rate']:.2f}%",
                  f"  failure rate at 8%: {r['failure_rate_8']:.2f}% (misses count as failures; "
                  f"{r['failure_rate_8_found']:.2f}% of found faces); AUC@8%: {r['auc_8']:.4f}"]
    else:
        lines.append(f"  failure rate at 8%: {r['failure_rate_8']:.2f}%; AUC@8%: {r['auc_8']:.4f}")
    for k, v in r["per_folder"].items():
        lines.append(f"  {k}: {v['found']}/{v['faces']} found, NME mean {v['nme_mean']:.3f}%")
    if r["missed"]:
        lines.append(f"  missed: {' '.join(Path(m).name for m in r['missed'][:20])}"
                     f"{' ...' if len(r['missed']) > 20 else ''}")
    return "\n".join(lines)


def format_errors(result: dict) -> list[str]:
    """One line per labelled image an :func:`evaluate_300w` run could not score (the reason names the file)."""
    errors = result.get("errors") or []
    if not errors:
        return []
    return [f"{len(errors)} labelled image(s) not scored:"] + [f"  error: {e['error']}" for e in errors]
