"""``tf2dasl reconstruct INPUT... --model MODEL_DIR --out OUT_DIR [--overlay --depth --pncc --obj --ply]``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

OUTPUTS = ("overlay", "depth", "pncc", "obj", "ply")


def add_parser(sub, name):
    p = sub.add_parser(name, help="reconstruct the faces of photos (JSON, overlays, depth, PNCC, meshes)",
                       description="Photos in, faces out: one OUT_DIR/<stem>.json per image (DESIGN.md §3), "
                                   "plus the pictures and meshes asked for.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("--model", required=True, help="model directory (tf2dasl import-3ddfa / train)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--detector", default="auto",
                   help="auto (BlazeFace if its model is in --assets, else Haar), blazeface, blazeface-full, "
                        "blazeface-short or haar")
    p.add_argument("--assets", help="folder holding the BlazeFace .tflite files (default: $TF2DASL_ASSETS)")
    p.add_argument("--score-threshold", type=float, default=None, help="minimum detection score")
    p.add_argument("--min-size", type=float, default=0.0, help="minimum face size in pixels")
    p.add_argument("--max-faces", type=int, default=None, help="keep at most this many faces per image")
    p.add_argument("--pts", action="store_true",
                   help="use the 68-point <stem>.pts next to an image instead of detection when present")
    p.add_argument("--boxes", metavar="JSON",
                   help='face boxes instead of detection: {"image.jpg": [[x0, y0, x1, y1], ...]} (0-based pixels, '
                        "FaceBoxes-like; images not listed are detected)")
    p.add_argument("--no-refine", action="store_true", help="skip the second, landmark-based crop")
    p.add_argument("--runtime", choices=("keras", "savedmodel", "tflite", "onnx"), default="keras",
                   help="run the regressor through an exported artifact of --export-dir")
    p.add_argument("--export-dir", help="export directory (tf2dasl export) for --runtime savedmodel|tflite|onnx")
    p.add_argument("--server", metavar="HOST:PORT",
                   help="call the model on a TF Serving server over gRPC (the model directory still supplies the "
                        "morphable model)")
    p.add_argument("--server-model", help="model name on the server (default: the model directory's name)")
    for o in OUTPUTS:
        p.add_argument(f"--{o}", action="store_true", help=f"write <stem>_{o}.{'png' if o in OUTPUTS[:3] else o}")
    p.add_argument("--all", action="store_true", help="write every picture and mesh")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..api import make_backend, read_boxes_file, reconstruct_paths

    outputs = [o for o in OUTPUTS if args.all or getattr(args, o)]
    det_opts = {"min_size": args.min_size, "max_faces": args.max_faces}
    if args.score_threshold is not None:
        det_opts["score_threshold"] = args.score_threshold
    backend = make_backend(args.model, args.runtime, args.export_dir, args.server, args.server_model)
    summary = reconstruct_paths(args.inputs, backend, args.out, outputs=outputs, detector=args.detector,
                                assets_dir=args.assets, detector_options=det_opts, use_pts=args.pts,
                                refine=not args.no_refine,
                                boxes=read_boxes_file(args.boxes) if args.boxes else None)
    print(summary.describe())
    for path, reason in summary.failures:
        print(f"  failed: {path}: {reason}", file=sys.stderr)
    Path(args.out, "summary.json").write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    return 1 if summary.failures else 0
