"""``tf2dasl export MODEL_DIR --out EXPORT_DIR [--version N] [--formats savedmodel,tflite,onnx] [--dense]``."""
from __future__ import annotations

from ..export import export_model


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="Export a model directory: a TF Serving SavedModel tree "
                                   "EXPORT_DIR/saved_model/NAME/VERSION/, NAME_{float32,float16,int8}.tflite, "
                                   "NAME.onnx (+ NAME_with_map.onnx for a 4-channel model) and export.json "
                                   "describing them.")
    p.add_argument("model", help="model directory (from `tf2dasl import-3ddfa` or `tf2dasl train`)")
    p.add_argument("--out", required=True, help="export directory to write")
    p.add_argument("--version", type=int, default=1, help="TF Serving model version folder (default 1)")
    p.add_argument("--formats", default="savedmodel,tflite,onnx",
                   help="comma-separated subset of savedmodel,tflite,onnx (default: all)")
    p.add_argument("--dense", action="store_true",
                   help="SavedModel also outputs the dense mesh `vertices` (N, 38365, 3) (+ ~23 MB)")
    p.set_defaults(run=run)


def run(args) -> int:
    manifest = export_model(args.model, args.out, version=args.version, formats=args.formats, dense=args.dense)
    arts = manifest["artifacts"]
    tfl = arts.get("tflite", {}).get("variants", {})
    gpu = [v for v, e in tfl.items() if e.get("gpu_compatible")]
    if tfl:
        print(f"tflite GPU-delegate compatible (analyzer + op check): {', '.join(gpu) or 'none'}")
    print(f"exported {manifest['model_name']} -> {args.out} (export.json describes every artifact)")
    return 0
