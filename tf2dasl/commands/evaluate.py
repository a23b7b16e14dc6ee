"""``tf2dasl evaluate aflw2000 --data DIR --model MODEL_DIR [--runtime ...] [--json OUT]``."""
from __future__ import annotations

import json
from pathlib import Path

RUNTIMES = ("keras", "savedmodel", "tflite", "onnx")


def add_parser(sub, name):
    p = sub.add_parser(name, help="measure accuracy with a standard protocol")
    bench = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    a = bench.add_parser("aflw2000", help="AFLW2000-3D, 3DDFA's protocol (68-point NME per yaw bin)")
    a.add_argument("--data", required=True, help="AFLW2000-3D folder laid out as ../shared/data/aflw2000_3d_dev")
    a.add_argument("--model", help="model directory (for --runtime keras, and the morphable model)")
    a.add_argument("--runtime", choices=RUNTIMES, default="keras", help="which artifact runs the regressor")
    a.add_argument("--export-dir", help="export directory (from `tf2dasl export`) for non-keras runtimes")
    a.add_argument("--variant", default="float32", help="TFLite variant: float32, float16 or int8")
    a.add_argument("--from-mat", action="store_true",
                   help="build crops from the .mat ground truth instead of 3DDFA's protocol files")
    a.add_argument("--json", help="write the results as JSON here")
    p.set_defaults(run=run)


def landmark_fn_for(args):
    """crops → crop-pixel landmarks ``(B, 68, 3)`` for the chosen runtime."""
    from ..errors import UserError

    if args.runtime == "keras":
        if not args.model:
            raise UserError("--model MODEL_DIR is required with --runtime keras")
        from .. import load_model

        model = load_model(args.model)
        return model.spec.name, lambda crops: model.landmarks_crop(model.predict_params(crops))
    if not args.export_dir:
        raise UserError(f"--export-dir EXPORT_DIR is required with --runtime {args.runtime} (make one with `tf2dasl export`)")
    from ..runtimes import load_runtime

    runtime = load_runtime(args.runtime, args.export_dir, variant=args.variant)
    return runtime.name, runtime.landmarks_crop


def run(args) -> int:
    from ..evaluate import evaluate_aflw2000, format_table, load_aflw2000

    data = load_aflw2000(args.data, from_mat=args.from_mat)
    name, fn = landmark_fn_for(args)
    result = evaluate_aflw2000(data, fn)
    result.update({"model": name, "runtime": args.runtime, "data": str(args.data), "crops": data.source["crops"]})
    print(f"AFLW2000-3D ({result['faces']} faces, {data.source['crops']} crops), model {name}, runtime {args.runtime}")
    print(format_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
