"""NME of models on a training config's held-out faces: AFLW-wild's validation split (21 points, visible ones, over
the visible points' box, through the config's fitted model points) and the 300-W hold-out (68 points, plain crops
from the ground-truth roi), with AFLW's yaw bins. A second table splits the AFLW figure by point group: 2DASL's 18 map
points, the ears, the chin (each group's mean distance over the box of all visible points, yaw-balanced; faces where
the group is not visible left out).

    python benchmarks/holdout_nme.py --config configs/dasl_mb05_aflw.yaml models/mb05 runs/X/model [...]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def point_groups(pred, holdout) -> dict:
    """``{group: 3DDFA's yaw table}`` of the AFLW hold-out's NME per point group (module docstring) from its
    predicted points ``pred (N, 21, >=2)``."""
    import numpy as np

    from tf2dasl.data.landmark_sets import AFLW21_MAP_INDICES, AFLW21_NAMES
    from tf2dasl.evaluate import yaw_table
    from tf2dasl.training.validation import nme_visible

    rest = [i for i in range(len(AFLW21_NAMES)) if i not in AFLW21_MAP_INDICES]
    groups = {"18 map points": list(AFLW21_MAP_INDICES), "ears": [i for i in rest if "ear" in AFLW21_NAMES[i]],
              "chin": [i for i in rest if "chin" in AFLW21_NAMES[i]]}
    out = {}
    for name, idx in groups.items():
        seen = np.isfinite(holdout.points[:, idx]).all(axis=-1).any(axis=1)
        nme = nme_visible(pred[seen][:, idx], holdout.points[seen][:, idx], holdout.points[seen])
        out[name] = yaw_table(nme, np.asarray(holdout.yaws)[seen])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    from tf2dasl.api import load_model
    from tf2dasl.inference.keras_runtime import KerasPredictor
    from tf2dasl.io.yaml_config import load_config
    from tf2dasl.training.train_config import TrainConfig, expand_data_paths
    from tf2dasl.training.validation import holdout_scores, load_holdouts, point_decoder, predict_holdout

    cfg = load_config(args.config, TrainConfig)
    expand_data_paths(cfg)
    layout, sets = load_holdouts(cfg)
    results = {}
    print("| model | " + " | ".join(f"{h.landmark_set} hold-out ({len(h.names)} faces), mean over faces" for h in sets)
          + " | AFLW by yaw: 0-30 / 30-60 / 60+ / **balanced mean** |")
    print("|---" * (len(sets) + 2) + "|")
    aflw = next((h for h in sets if h.landmark_set == "aflw21" and h.yaws is not None), None)
    group_rows = []
    for m in args.models:
        task = load_model(m)
        points = point_decoder(layout, task.mm, task.spec.input_size, task.spec.crop_convention)
        predictor = KerasPredictor(task)
        preds = {h.landmark_set: predict_holdout(predictor, points, layout, h) for h in sets}
        r = {h.landmark_set: holdout_scores(preds[h.landmark_set], h) for h in sets}
        results[m] = r
        yaw = r.get("aflw21", {}).get("yaw")
        yaw_cells = " / ".join(f"{yaw[k]:.3f}" for k in ("yaw_0_30", "yaw_30_60", "yaw_60_90", "mean")) if yaw else "-"
        print(f"| {m} | " + " | ".join(f"{r[h.landmark_set]['nme']:.3f}" for h in sets) + f" | {yaw_cells} |")
        if aflw is not None:
            r["aflw21"]["groups"] = groups = point_groups(preds["aflw21"], aflw)
            group_rows += [f"| {m} | {name} | " + " | ".join(f"{t[k]:.3f}" for k in ("yaw_0_30", "yaw_30_60",
                                                                                      "yaw_60_90", "mean")) + " |"
                           for name, t in groups.items()]
    if group_rows:
        print("\n| model | AFLW hold-out by points | 0-30 | 30-60 | 60+ | **balanced mean** |\n|---|---|---|---|---|---|")
        print("\n".join(group_rows))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
