"""``tf2dasl swap SOURCE TARGET --out OUT.png --model MODEL_DIR``: SOURCE's face on TARGET's face."""
from __future__ import annotations

from ..io.outputs import write_image
from ..texture.edit import find_face, swap_face
from ._edits import add_common, check_out, load, read_photo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="The source face's UV texture rendered on the target face's 3D geometry and "
                                   "pose, colour-matched and Poisson-blended into the target photo.")
    p.add_argument("source", help="photo giving the face (its texture)")
    p.add_argument("target", help="photo receiving it (its geometry, pose, lighting, background)")
    p.add_argument("--out", required=True, help="output image (.png or .jpg)")
    p.add_argument("--source-face", type=int, default=None, metavar="I",
                   help="which face of SOURCE, 0-based from the left (default: the largest)")
    p.add_argument("--target-face", type=int, default=None, metavar="I",
                   help="which face of TARGET, 0-based from the left (default: the largest)")
    add_common(p)
    p.set_defaults(run=run)


def run(args) -> int:
    check_out(args.out, args.force, IMAGE_SUFFIXES)
    source, target = read_photo(args, args.source), read_photo(args, args.target)  # before the model: one line
    rec, mm, config = load(args)
    source_face = find_face(rec, source, args.source, args.source_face, "source")
    target_face = find_face(rec, target, args.target, args.target_face, "target")
    out = write_image(args.out, swap_face(mm, source, source_face, target, target_face, config), overwrite=args.force)
    print(f"swapped {args.source} onto {args.target} -> {out}")
    return 0
