"""How big models make the faces of a profiled set, against the views' exact labels, per |yaw| bin of the label.

A profiled view's label is its source face's fit (by the teacher, near-frontal) turned out of plane, so its size is
the teacher's near-frontal size at every yaw. ``size ratio`` is the mean of ``size(label) / size(predicted)``
(root-mean-square distance of every 50th vertex from the centroid, as ``reconstruction_diagnostic.py --size-only``
measures AFLW2000-3D: 1 = the label's size, above 1 = predicted too small); ``depth row`` the length of the camera's
third row over the mean of its first two, label → predicted. The views are training data (the teacher's own fits,
and seen by every model trained with them): this measures the set, not a model's accuracy.

    python benchmarks/teacher_on_views.py ~/.cache/tf2dasl/profiled/profiled-KEY models/mb05 [runs/X/model ...]
        [--views 3000] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from reconstruction_diagnostic import depth_row, rms_size  # noqa: E402  (the AFLW2000-3D size table's measures)

#: |yaw| bins of the label, degrees (profiled views start at the config's smallest yaw)
BINS = ((0, 15), (15, 30), (30, 45), (45, 60), (60, 75), (75, 90.01))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="a complete profiled set (the folder `tf2dasl profile` / `train` prints)")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--views", type=int, default=3000, help="views drawn at random (default 3000)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import cv2
    import numpy as np

    from tf2dasl.api import load_model
    from tf2dasl.inference.keras_runtime import KerasPredictor

    root = Path(args.folder).expanduser()
    if not (root / "profile.json").is_file():
        sys.exit(f"teacher_on_views: {root} is not a complete profiled set (no profile.json): give the folder "
                 "`tf2dasl profile` printed")
    names = (root / "list.txt").read_text().split()
    labels = np.load(root / "params.npy")
    pick = np.sort(np.random.default_rng(args.seed).choice(len(names), min(args.views, len(names)), replace=False))
    crops = np.stack([cv2.imread(str(root / names[i])) for i in pick])
    labels = labels[pick]
    print(f"{len(pick)} views of {root}\n")
    print("| model | " + " | ".join(f"size ratio {lo}-{int(hi)}" for lo, hi in BINS)
          + " | depth row 60-90, label → predicted |")
    print("|---" * (len(BINS) + 2) + "|")
    for m in args.models:
        task = load_model(m)
        pred = np.asarray(KerasPredictor(task).predict(crops).params, np.float64)
        yaw = np.abs(task.decoder.pose(labels)[:, 0])
        ratio = rms_size(task.decoder.vertices(labels)) / rms_size(task.decoder.vertices(pred))
        cells = []
        for lo, hi in BINS:
            inside = (yaw >= lo) & (yaw < hi)
            cells.append(f"{ratio[inside].mean():.4f} ({inside.sum()})" if inside.any() else "-")
        wide = yaw >= 60
        cells.append(f"{depth_row(labels[wide]).mean():.3f} → {depth_row(pred[wide]).mean():.3f}")
        print(f"| {m} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
