"""300-W style benchmark: 68-point NME with the outer inter-ocular normalisation through the full pipeline.

Folders of images with 68-point ``.pts`` go through :class:`tf2dasl.reconstruct.Reconstructor` (detector boxes,
or oracle crops from the ground truth); a detection finds the labelled face by the :data:`MATCH_IOU` rule.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.sources import list_pts_faces
from ..detect.base import box_iou
from ..errors import UserError
from ..geometry.roi import roi_from_landmarks
from ..io.images import ImageError, read_image
from ..reconstruct import make_reconstructor
from .common import DatasetError, nan_to_none
from .metrics import FAILURE_NME, ced_auc, nme_interocular

#: Detector mode: a detection finds the labelled face when its box has IoU >= MATCH_IOU with the bounding
#: box of the 68 ground-truth landmarks, or contains that box's centre; among such detections the one with
#: the highest IoU is taken (benchmarks/detection_rate.py uses the same rule).
MATCH_IOU = 0.3
BOX_MODES = ("detector", "oracle")


def match_labelled_face(boxes: np.ndarray, landmarks: np.ndarray) -> int | None:
    """Index of the box ``(F, 4)`` ``[x0, y0, x1, y1]`` that finds the face labelled ``landmarks (68, 2)``
    by the :data:`MATCH_IOU` rule, or None."""
    lm = np.asarray(landmarks, np.float64)[:, :2]
    return match_box(boxes, np.concatenate([lm.min(0), lm.max(0)]))


def match_box(boxes: np.ndarray, gt: np.ndarray) -> int | None:
    """Index of the box ``(F, 4)`` that finds the ground-truth box ``gt (4,)``: IoU >= :data:`MATCH_IOU` or
    containing its centre, the highest IoU first; None when no box does."""
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

    ``model`` is a model directory or a loaded :class:`~tf2dasl.models.task.FaceTask`. Returns a JSON-ready dict:
    counts, ``detection_rate`` (%), ``nme_68_interocular`` ``{"mean", "median"}`` (%, over found faces),
    ``failure_rate_8`` (% of all labelled faces with NME > 8% or missed) and ``failure_rate_8_found`` (% of
    found faces), ``auc_8`` (CED area to 8%, misses count as failures), per-folder means, the missed images
    and every face's NME.

    A labelled image that cannot be scored (unreadable image, malformed ``.pts``) does not stop the run: it is
    left out of every figure and listed in ``errors`` as ``{"image", "error"}`` (the reason names the file).
    ``detector`` (None: ``auto``), ``assets_dir`` and ``detector_options`` apply to ``boxes="detector"`` only;
    given with ``boxes="oracle"`` they are refused (:class:`UserError`) rather than ignored.
    """
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
    if boxes == "detector":
        rec = make_reconstructor(model, detector or "auto", assets_dir, detector_options)
        det_name = rec.detector.name if hasattr(rec.detector, "name") else str(detector)
    else:
        rec, det_name = make_reconstructor(model, detector=None), None
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
    return nan_to_none({
        "benchmark": "300w", "normalisation": "outer inter-ocular (points 36, 45)", "boxes": boxes,
        "detector": det_name, "model": rec.predictor.name,
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
