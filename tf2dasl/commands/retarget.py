"""``tf2dasl retarget --expression SOURCE --onto TARGET --out OUT --model MODEL_DIR [--pose]``."""
from __future__ import annotations

from ..errors import UserError
from ..geometry.morphable_model import EXPRESSION
from ..io.outputs import write_image
from ..texture.edit import find_face, retarget_expression
from ..texture.edit_video import retarget_video
from ..video import is_video_path
from ._edits import add_common, check_out, load, read_photo


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="TARGET's identity and texture with SOURCE's expression coefficients, rendered "
                                   "back into TARGET. A video SOURCE (.mp4, ...) animates TARGET with the clip's "
                                   "expressions (and, with --pose, its head rotation) into an MP4.")
    p.add_argument("--expression", required=True, metavar="SOURCE", help="photo or video giving the expression")
    p.add_argument("--onto", required=True, metavar="TARGET", help="photo receiving it")
    p.add_argument("--out", required=True, help="output: .png/.jpg for a photo SOURCE, .mp4 for a video SOURCE")
    p.add_argument("--pose", action="store_true",
                   help="video: also turn the target's head as the source's turns (relative to its first frame)")
    p.add_argument("--start-frame", type=int, default=0, metavar="N", help="video: start at frame N (0-based)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="video: read at most N frames")
    p.add_argument("--source-face", type=int, default=None, metavar="I",
                   help="photo SOURCE: which face, 0-based from the left (default: the largest)")
    p.add_argument("--target-face", type=int, default=None, metavar="I",
                   help="which face of TARGET, 0-based from the left (default: the largest)")
    add_common(p)
    p.set_defaults(run=run)


def run(args) -> int:
    video = is_video_path(args.expression)
    check_out(args.out, args.force, (".mp4",) if video else (".png", ".jpg", ".jpeg"))
    if args.pose and not video:
        raise UserError("--pose needs a video SOURCE (a photo gives one expression, no motion)")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames {args.max_frames}: give at least 1")
    if args.start_frame < 0:
        raise UserError(f"--start-frame {args.start_frame}: give 0 or more")
    target = read_photo(args, args.onto)  # photos before the model: a bad one is one line at once
    source = None if video else read_photo(args, args.expression)
    rec, mm, config = load(args)
    target_face = find_face(rec, target, args.onto, args.target_face, "target")
    if video:
        summary = retarget_video(mm, rec, args.expression, target, target_face, args.out, with_pose=args.pose,
                                 max_frames=args.max_frames, start=args.start_frame, config=config,
                                 overwrite=args.force)
        print(summary.describe())
        return 0
    source_face = find_face(rec, source, args.expression, args.source_face, "source")
    out = write_image(args.out, retarget_expression(mm, target, target_face, source_face.params[EXPRESSION],
                                                    config=config),
                      overwrite=args.force)
    print(f"{args.expression}'s expression on {args.onto} -> {out}")
    return 0
