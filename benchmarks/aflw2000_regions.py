"""Where a model's 68-point error lives on the AFLW2000-3D protocol: the yaw-balanced NME of each face region
(jaw, brows, nose, eyes, outer and inner mouth) against both ground truths, per model, and with test-time flip
averaging (the landmarks on the crop and on its mirror image, mirrored back, averaged) as a separate row.

    python benchmarks/aflw2000_regions.py [--data DIR] MODEL_DIR [MODEL_DIR ...]
                                          [--export-dir EXPORT_DIR --runtimes tflite:int8 onnx:int8 ...]

A region's figure is its points' share of the protocol's NME, scaled to a per-point mean (the mean distance of the
region's points over sqrt(w*h) of the ground truth's box), so the 68-point NME is the point-count-weighted mean of
the regions. Monitor only: the slice is the one results are reported on, never one to choose on. With
``--export-dir``, each ``KIND:VARIANT`` of ``--runtimes`` adds a row for that artifact of the export (no flip row).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, shared_dir  # noqa: E402

sys.path.insert(0, str(REPO))

#: the 68-point regions (iBUG numbering)
REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
           "mouth": range(48, 60), "inner mouth": range(60, 68)}


def region_table(lm_img: np.ndarray, gt: np.ndarray, yaws: np.ndarray) -> dict[str, float]:
    """Image-pixel landmarks ``(N, 68, >=2)`` against ``gt (N, 68, 2)`` → yaw-balanced NME (%) per region and
    ``"all"``."""
    from tf2dasl.evaluate.metrics import box_size, yaw_table

    d = np.linalg.norm(np.asarray(lm_img, np.float64)[..., :2] - gt, axis=-1) / box_size(gt)[:, None]
    out = {name: yaw_table(d[:, list(ix)].mean(axis=1), yaws)["mean"] for name, ix in REGIONS.items()}
    out["all"] = yaw_table(d.mean(axis=1), yaws)["mean"]
    return out


def landmarks(model, crops: np.ndarray) -> np.ndarray:
    """``model``'s 68 landmarks ``(N, 68, 3)`` crop pixels on ``crops``."""
    from tf2dasl.inference.keras_runtime import KerasPredictor

    return model.decoder.landmarks(KerasPredictor(model).predict(crops).params)


def flip_average(model, crops: np.ndarray) -> np.ndarray:
    """Test-time flip averaging: crop-pixel landmarks ``(N, 68, 3)`` averaged with the mirror image's mirrored back."""
    from tf2dasl.data.teacher import mirror_landmarks_68

    plain = landmarks(model, crops)
    mirrored = landmarks(model, np.ascontiguousarray(crops[:, :, ::-1]))
    out = plain.copy()
    out[..., :2] = (plain[..., :2] + mirror_landmarks_68(mirrored[..., :2], crops.shape[2])) / 2
    return out


def main() -> None:
    from tf2dasl.api import load_model, load_predictor
    from tf2dasl.evaluate import load_aflw2000
    from tf2dasl.geometry.camera import crop_to_image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="default: SHARED/data/aflw2000_3d_dev")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--export-dir", help="an export of the models (tf2dasl export) whose artifacts get rows too")
    ap.add_argument("--runtimes", nargs="+", default=["tflite:int8", "onnx:int8"], metavar="KIND:VARIANT",
                    help="the export's artifacts to add (default: tflite:int8 onnx:int8)")
    args = ap.parse_args()
    data = load_aflw2000(args.data or shared_dir() / "data" / "aflw2000_3d_dev", 120)
    print(f"AFLW2000-3D ({len(data.names)} faces), 68-point NME (%) per region, yaw-balanced; monitor only")
    print("| model | ground truth | " + " | ".join(REGIONS) + " | all 68 |")
    print("|---|---|" + "---|" * (len(REGIONS) + 1))
    rows = []
    for path in args.models:
        model = load_model(path)
        plain = landmarks(model, data.crops)
        rows += [(path, plain), (f"{path}, test-time flip average", flip_average(model, data.crops))]
    if args.export_dir:
        decoder = model.decoder  # the export's model: the last one listed
        for spec in args.runtimes:
            kind, _, variant = spec.partition(":")
            rt = load_predictor(kind, export_dir=args.export_dir, variant=variant or None)
            rows.append((f"{args.export_dir} ({kind} {variant or 'float32'})",
                         decoder.landmarks(rt.predict(data.crops).params)))
    for label, lm in rows:
        img = crop_to_image(lm, data.roi_boxes, data.crops.shape[1])
        for gt_name, gt in data.ground_truth.items():
            t = region_table(img, gt, data.yaws)
            print(f"| {label} | {gt_name} | " + " | ".join(f"{t[r]:.3f}" for r in REGIONS) + f" | {t['all']:.3f} |")


if __name__ == "__main__":
    main()
