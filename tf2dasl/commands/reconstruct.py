"""``tf2dasl reconstruct INPUT... --model MODEL_DIR --out OUT_DIR [--overlay --depth --pncc --ply --uv-texture --obj
--glb]``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..batch import RunInterrupted, model_identity, reconstruct_paths
from ..batch.files import MESHES, PICTURES, TEXTURED
from ..cli import EXIT_FAILURES, EXIT_INTERRUPTED
from ..inference import RUNTIMES
from ..io.boxes import read_boxes_file
from ..reconstruct import make_reconstructor
from . import reconstruct_video
from ._detector_options import add_detector_options, detector_options_of
from ._edits import check_texture_size
from ._limits import add_max_faces, add_max_pixels, max_faces_of, max_pixels_of

#: every --flag of an output; the textured ones need a model directory with UV coordinates (tf2dasl.texture.assets),
#: and for videos --obj writes per-frame meshes with vertex colours
OUTPUTS = PICTURES + MESHES + TEXTURED
OUTPUT_HELP = {
    "ply": "write <stem>_<face>.ply per face: the dense mesh in image pixels (y flipped) with vertex colours",
    "uv_texture": "write <stem>_<face>_texture.png per face: its UV texture map from the photo (needs UVs)",
    "obj": "write <stem>_<face>.obj + .mtl + _texture.png per face: textured mesh in the object frame (needs UVs; "
           "videos: per-frame meshes with vertex colours)",
    "glb": "write <stem>_<face>.glb per face: binary glTF, texture embedded, the pose as the node's transform "
           "(needs UVs)",
}

EPILOG = """\
output names: OUT_DIR/<stem>.json (and <stem>_overlay.png, <stem>_0.obj, ...). Names are unique in the folder:
when an earlier input (or summary.json) took a stem, the image gets <stem>_<ext> (a.bmp after a.png ->
a_bmp.json), then <stem>_<ext>_2, ...; such renames are printed and listed under "renamed" in summary.json.

reported at the end (and in OUT_DIR/summary.json): each image without a face ("no face: PATH", with a hint;
it still gets its JSON with "faces": []) and each failure ("failed: PATH: reason": missing input, folder
without images, unreadable image or .pts, a --boxes box outside its image). The other inputs go on.

the output folder (docs/output_format.md, "Output guarantees"): every file is written whole or not at all
(temporary file, fsync, rename); OUT_DIR/tf2dasl-manifest.jsonl records what tf2dasl wrote there (sizes, SHA-256) and which
inputs are complete. A rerun into the same folder skips the inputs already complete with the same model and
settings (--force redoes them) and redoes incomplete ones. A file in OUT_DIR that no tf2dasl run wrote is
never overwritten: that image's outputs get another name ("renamed: ... was not written by tf2dasl: kept");
a user's summary.json makes it summary_2.json. A file that cannot be written (disk full, I/O error) is a
failure naming the file and the reason ("incomplete: PATH (not written: ...)"); when not even an image's JSON
can be written the run stops and lists the inputs not processed. summary.json is written in every case
(also after Ctrl-C), with "complete": false and what is missing.

exit status: 0 when every input was read and every output written;
images without faces are listed but are not failures (as in 3DDFA_V2 and MediaPipe). 1 when any input failed,
an output could not be written or the run stopped early; 130 after Ctrl-C (summary.json written); 2 for a
usage error (bad argument, missing model, malformed --boxes file, --assets without a BlazeFace model),
reported as one line before anything runs.
"""


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="Photos in, faces out: one OUT_DIR/<stem>.json per image (docs/output_format.md), "
                                   "plus the pictures and meshes asked for.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders of images, or video files")
    p.add_argument("--model", required=True, help="model directory (tf2dasl import-3ddfa / train)")
    p.add_argument("--out", required=True, help="output folder")
    add_detector_options(p)
    add_max_faces(p)
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
        p.add_argument(f"--{o.replace('_', '-')}", dest=o, action="store_true",
                       help=f"write <stem>_{o}.png" if o in PICTURES else OUTPUT_HELP[o])
    p.add_argument("--texture-size", type=int, default=512, metavar="N",
                   help="side of the UV texture maps in texels (default 512)")
    p.add_argument("--all", action="store_true",
                   help="write every picture and mesh (the textured ones when the model has UV coordinates)")
    add_max_pixels(p, reduced=True)
    p.add_argument("--force", action="store_true",
                   help="redo the inputs an earlier run into --out completed (files that tf2dasl did not write are "
                        "still never overwritten)")
    reconstruct_video.add_arguments(p)
    p.epilog += "\n" + reconstruct_video.EPILOG
    p.set_defaults(run=run)


def run(args) -> int:
    check_texture_size(args.texture_size)
    outputs = [o for o in OUTPUTS if getattr(args, o)]
    det_opts = detector_options_of(args)
    boxes = read_boxes_file(args.boxes) if args.boxes else None  # a malformed file fails before the model loads
    photos, videos = reconstruct_video.split_inputs(args)
    if videos:
        reconstruct_video.video_config(args)  # a bad --video-config fails before the model loads
    model = {"runtime": args.runtime, "export_dir": args.export_dir, "server": args.server,
             "server_model": args.server_model}
    rec = make_reconstructor(args.model, args.detector, args.assets, det_opts, refine=not args.no_refine, **model)
    if args.all:  # every output this model can make
        outputs = [o for o in OUTPUTS if o not in TEXTURED or rec.mm.has_uv or o in outputs]
    settings = {"model": model_identity(args.model), "runtime": args.runtime,
                "export_dir": str(Path(args.export_dir).resolve()) if args.export_dir else None,
                "server": args.server, "server_model": args.server_model}
    video_rc, video_run = reconstruct_video.run_videos(args, videos, rec, settings, outputs, photos) if videos \
        else (0, None)
    if not photos or video_rc == EXIT_INTERRUPTED:
        return video_rc
    args.inputs = photos
    try:
        summary = reconstruct_paths(args.inputs, rec, args.out, outputs=outputs, detector=args.detector,
                                    assets_dir=args.assets, detector_options=det_opts, use_pts=args.pts,
                                    boxes=boxes, force=args.force, settings=settings,
                                    max_pixels=max_pixels_of(args), texture_size=args.texture_size,
                                    max_faces=max_faces_of(args),
                                    videos=video_run.to_json()["videos"] if video_run else None)
    except RunInterrupted as stop:
        _report(stop.summary)
        return EXIT_INTERRUPTED
    _report(summary)
    return max(video_rc, 0 if summary.complete else EXIT_FAILURES)


def _report(summary) -> None:
    print(summary.describe())
    for line in summary.report_lines():
        print(f"  {line}", file=sys.stderr)
