"""Face-detection rate and speed of tf2dasl's detectors on 300-W, and the box_to_faceboxes calibration.

Data (read from ``--shared``, never copied): the 1,207 300-W crops ``data/300w/afw/*.jpg`` (337) and
``data/300w/helen_train/*.jpg`` (870), one labelled face each (68-point ``.pts``, 1-based), and the 12
uncropped photos ``data/300w/afw/full/*.jpg`` with several faces, the ``.pts`` of one of them.

Rule: a labelled face counts as **detected** when some detection's box has IoU >= 0.3 with the GT box
(the bounding box of its 68 landmarks) **or** contains the GT box's centre. Timing is ``detect()`` only
(decoded image in memory), single process, ``--num-threads`` LiteRT threads.

``--calibrate`` also fits, per detector, the linear map ``box_to_faceboxes`` (square box of side
``scale * s`` centred at ``(cx + shift_x * s, cy + shift_y * s)``, ``s`` the mean side of the detected
box) to a FaceBoxes-like target: the GT 68-landmark box expanded as 3DDFA_V2's FaceBoxes does (square of
side ``FB_SIDE * L`` centred ``FB_SHIFT_Y * L`` below the landmark-box centre, ``L`` its longer side;
constants measured with a port of 3DDFA_V2's FaceBoxes on these crops). The fitted constants are the
medians over the detected faces; it then reports the IoU of 3DDFA_V2's roi (``parse_roi_box_from_bbox``)
from the mapped box with the roi from the target (mean, and the share >= 0.8), for the identity map, the
detector's current constants and the fitted ones.

    python benchmarks/detection_rate.py --shared ../shared --detector all --calibrate
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tf2dasl.detect import DETECTOR_NAMES, box_iou, boxes_from_pts, make_detector, scale_shift_box  # noqa: E402
from tf2dasl.io.images import read_image  # noqa: E402
from tf2dasl.evaluate import MATCH_IOU, match_box  # noqa: E402
from tf2dasl.io.pts import read_pts  # noqa: E402

IOU_RULE = MATCH_IOU
V2_ROI_SHIFT = 0.14  # parse_roi_box_from_bbox: centre moved down by 0.14 * mean side
V2_ROI_SCALE = 1.58  # ... and side 1.58 * mean side
FB_SIDE = 1.100  # FaceBoxes' mean side / longer side of the 68-landmark box (median, see faceboxes_target)
FB_SHIFT_Y = -0.162  # (FaceBoxes centre y - landmark-box centre y) / that side: FaceBoxes sits higher


def roi_from_bbox(box: np.ndarray) -> np.ndarray:
    """3DDFA_V2 ``parse_roi_box_from_bbox`` (without its int() of the size): ``(..., 4)`` → ``(..., 4)``."""
    b = np.asarray(box, np.float64)
    s = ((b[..., 2] - b[..., 0]) + (b[..., 3] - b[..., 1])) / 2
    cx = (b[..., 0] + b[..., 2]) / 2
    cy = (b[..., 1] + b[..., 3]) / 2 + V2_ROI_SHIFT * s
    half = V2_ROI_SCALE * s / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], -1)


def faceboxes_target(pts: np.ndarray) -> np.ndarray:
    """The GT 68-landmark box expanded as 3DDFA_V2's FaceBoxes does: ``(4,)`` square box.

    FB_SIDE and FB_SHIFT_Y are the medians of FaceBoxes' mean side / L and of its centre offset / L
    (L: longer side of the landmark box) from a port of 3DDFA_V2's FaceBoxes (FaceBoxesProd.pth, its
    720x1080 resize, NMS 0.3, score > 0.5) run on the 1,207 300-W crops; all 1,207 faces found. Using
    this target instead of FaceBoxes' own boxes changes the fitted constants by <= 0.005.
    """
    x0, y0, x1, y1 = boxes_from_pts(pts).astype(np.float64)
    L = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + FB_SHIFT_Y * L
    half = FB_SIDE * L / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def match(dets, gt_box: np.ndarray):
    """The detection that finds the GT face by the rule (tf2dasl.evaluate.match_box), or None."""
    if not dets:
        return None
    i = match_box(np.stack([d.box for d in dets]), gt_box)
    return None if i is None else dets[i]


def load_set(shared: Path, name: str):
    folder = shared / "data" / "300w" / name
    items = []
    for img in sorted(folder.glob("*.jpg")):
        items.append((img, read_pts(img.with_suffix(".pts"))))
    return items


def evaluate(det, items, collect=False):
    found, ms, pairs = 0, [], []
    misses = []
    for img_path, pts in items:
        image = read_image(img_path)
        t = time.perf_counter()
        dets = det.detect(image)
        ms.append((time.perf_counter() - t) * 1e3)
        gt = boxes_from_pts(pts)
        m = match(dets, gt)
        if m is None:
            misses.append(img_path.name)
            continue
        found += 1
        if collect:
            pairs.append((m.box.astype(np.float64), pts))
    return found, np.asarray(ms), pairs, misses


def fit_map(pairs):
    """Medians of target side / detected mean side and of centre offsets / detected mean side."""
    scale, sx, sy = [], [], []
    for box, pts in pairs:
        t = faceboxes_target(pts)
        s = ((box[2] - box[0]) + (box[3] - box[1])) / 2
        scale.append((t[2] - t[0]) / s)
        sx.append(((t[0] + t[2]) - (box[0] + box[2])) / 2 / s)
        sy.append(((t[1] + t[3]) - (box[1] + box[3])) / 2 / s)
    return float(np.median(scale)), float(np.median(sx)), float(np.median(sy))


def roi_quality(pairs, scale, shift_x, shift_y):
    ious = []
    for box, pts in pairs:
        roi = roi_from_bbox(scale_shift_box(box, scale, shift_x, shift_y))
        ious.append(box_iou(roi[None], roi_from_bbox(faceboxes_target(pts))[None])[0, 0])
    ious = np.asarray(ious)
    return float(ious.mean()), float((ious >= 0.8).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("TF2DASL_SHARED", REPO.parent / "shared")),
                    help="the shared/ folder (data/300w, assets/detectors)")
    ap.add_argument("--assets", type=Path, default=None, help="detector model folder (default: SHARED/assets/detectors)")
    ap.add_argument("--detector", action="append", default=None,
                    help=f"one of {', '.join(DETECTOR_NAMES)} or 'all'; repeatable (default: auto)")
    ap.add_argument("--score-threshold", type=float, default=None, help="override the detector's default")
    ap.add_argument("--num-threads", type=int, default=1, help="LiteRT threads (BlazeFace)")
    ap.add_argument("--calibrate", action="store_true", help="fit box_to_faceboxes constants (see module doc)")
    ap.add_argument("--show-misses", action="store_true", help="list the crops a detector misses")
    args = ap.parse_args(argv)

    names = args.detector or ["auto"]
    if "all" in names:
        names = ["blazeface-short", "blazeface-full", "haar", "auto"]
    for name in names:
        if name not in DETECTOR_NAMES:
            ap.error(f"--detector {name!r}: use one of {', '.join(DETECTOR_NAMES)} or all")
    assets = args.assets or args.shared / "assets" / "detectors"
    sets = {name: load_set(args.shared, name) for name in ("afw", "helen_train")}
    full = load_set(args.shared, "afw/full")
    total = sum(len(v) for v in sets.values())
    print(f"300-W crops: {', '.join(f'{k} {len(v)}' for k, v in sets.items())} = {total}; afw/full photos: {len(full)}")
    print(f"rule: detected if a box has IoU >= {IOU_RULE} with the 68-landmark box or contains its centre")
    opts = {"num_threads": args.num_threads}
    if args.score_threshold is not None:
        opts["score_threshold"] = args.score_threshold
    for name in names:
        det = make_detector(name, assets, **opts)
        label = f"{name} ({det.name})" if det.name != name else name
        all_pairs, found_all, ms_all, misses_all = [], 0, [], []
        parts = []
        for set_name, items in sets.items():
            found, ms, pairs, misses = evaluate(det, items, collect=args.calibrate)
            found_all += found
            ms_all.append(ms)
            all_pairs += pairs
            misses_all += [f"{set_name}/{m}" for m in misses]
            parts.append(f"{set_name} {found}/{len(items)}")
        ms_all = np.concatenate(ms_all)
        print(f"{label:28s} 300-W crops: {found_all}/{total} = {100 * found_all / total:.2f}% "
              f"({', '.join(parts)}); {ms_all.mean():.1f} ms/image (median {np.median(ms_all):.1f})")
        f_found, f_ms, _, f_miss = evaluate(det, full)
        print(f"{'':28s} afw/full photos: labelled face found in {f_found}/{len(full)}"
              f"{' (missed: ' + ', '.join(f_miss) + ')' if f_miss else ''}; {f_ms.mean():.1f} ms/image")
        if args.show_misses and misses_all:
            print(f"{'':28s} missed: {' '.join(misses_all)}")
        if args.calibrate and all_pairs:
            cur = (det.FACEBOXES_SCALE, det.FACEBOXES_SHIFT_X, det.FACEBOXES_SHIFT_Y)
            fit = fit_map(all_pairs)
            q_cur, q_fit, q_id = roi_quality(all_pairs, *cur), roi_quality(all_pairs, *fit), roi_quality(all_pairs, 1, 0, 0)
            print(f"{'':28s} calibration on {len(all_pairs)} faces: scale={fit[0]:.3f} shift_x={fit[1]:.3f} "
                  f"shift_y={fit[2]:.3f}")
            print(f"{'':28s} V2 roi vs target's V2 roi, IoU mean / share>=0.8: identity map {q_id[0]:.3f}/{q_id[1]:.3f}; "
                  f"current {cur} {q_cur[0]:.3f}/{q_cur[1]:.3f}; fitted {q_fit[0]:.3f}/{q_fit[1]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
