"""``tf2dasl export MODEL_DIR --out EXPORT_DIR [--version N] [--formats savedmodel,tflite,onnx] [--dense]
[--calibration DIR ...] [--calibration-faces N] [--calibration-seed N] [--no-int8]``."""
from __future__ import annotations

from ..data.calibration import (
    DEFAULT_FACES,
    DEFAULT_SOURCES,
    SEED,
    CalibrationError,
    default_sources,
    load_calibration,
)
from ..export import check_formats, export_model
from ..inference.export_dir import INT8, ONNX_VARIANTS, TFLITE_VARIANTS
from ..io.model_files import read_model_spec


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="Export a model directory: a TF Serving SavedModel tree "
                                   "EXPORT_DIR/saved_model/NAME/VERSION/, NAME_{float32,float16,int8}.tflite, "
                                   "NAME.onnx, NAME_int8.onnx (+ NAME_with_map.onnx for a 4-channel model) and "
                                   "export.json describing them. The int8 files are full-integer (uint8 crops in) "
                                   "and calibrated on real training faces.")
    p.add_argument("model", help="model directory (from `tf2dasl import-3ddfa` or `tf2dasl train`)")
    p.add_argument("--out", required=True, help="export directory to write")
    p.add_argument("--version", type=int, default=1, help="TF Serving model version folder (default 1)")
    p.add_argument("--formats", default="savedmodel,tflite,onnx",
                   help="comma-separated subset of savedmodel,tflite,onnx (default: all)")
    p.add_argument("--dense", action="store_true",
                   help="SavedModel also outputs the dense mesh `vertices` (N, 38365, 3) (+ ~23 MB)")
    p.add_argument("--calibration", nargs="+", metavar="DIR",
                   help="training faces the int8 files are calibrated on: AFLW crops (annotations.npz + crops/), "
                        "300-W images with .pts, or folders of face crops; never an evaluation set (default: "
                        f"{', '.join(DEFAULT_SOURCES)} under $TF2DASL_SHARED, else ../shared)")
    p.add_argument("--calibration-faces", type=int, default=DEFAULT_FACES,
                   help=f"how many calibration faces, drawn evenly over the folders (default {DEFAULT_FACES})")
    p.add_argument("--calibration-seed", type=int, default=SEED,
                   help=f"the seed the calibration faces are drawn with (default {SEED})")
    p.add_argument("--no-int8", action="store_true", help="write no int8 files (no calibration faces needed)")
    p.set_defaults(run=run)


def calibration_for(args, size: int):
    """The calibration set the arguments name (None with --no-int8): --calibration, else the default folders."""
    if args.no_int8:
        if args.calibration:
            raise CalibrationError("--calibration calibrates the int8 files: drop it or drop --no-int8")
        return None
    folders = args.calibration or default_sources()
    if not folders:
        raise CalibrationError(f"the int8 export needs calibration faces and none of the default folders "
                               f"({', '.join(DEFAULT_SOURCES)} under $TF2DASL_SHARED or ../shared) exists: pass "
                               "--calibration DIR (training faces), or --no-int8")
    return load_calibration(folders, args.calibration_faces, size, args.calibration_seed)


def run(args) -> int:
    formats = check_formats(args.formats)
    spec = read_model_spec(args.model)
    wants_int8 = {"tflite", "onnx"} & set(formats)
    calibration = calibration_for(args, spec.input_size) if wants_int8 else None
    drop = () if calibration is not None else (INT8,)
    manifest = export_model(args.model, args.out, version=args.version, formats=formats, dense=args.dense,
                            tflite_variants=[v for v in TFLITE_VARIANTS if v not in drop],
                            onnx_variants=[v for v in ONNX_VARIANTS if v not in drop], calibration=calibration)
    arts = manifest["artifacts"]
    tfl = arts.get("tflite", {}).get("variants", {})
    gpu = [v for v, e in tfl.items() if e.get("gpu_compatible")]
    if tfl:
        print(f"tflite GPU-delegate compatible (analyzer + op check): {', '.join(gpu) or 'none'}")
    if calibration is not None:
        cal = manifest["calibration"]
        print(f"int8 calibrated on {cal['faces']} faces from {', '.join(cal['sources'])}")
    print(f"exported {manifest['model_name']} -> {args.out} (export.json describes every artifact)")
    return 0
