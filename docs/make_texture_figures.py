"""docs/assets.md's figures of the textured outputs and edits, from the shared demo photos and clip.

    python docs/make_texture_figures.py --model models/mb05 --shared ../shared --out docs/

Writes, each a small PNG (at most ``--max-width`` pixels wide, palette-free, under 300 KB):

* ``texture_views.png``: a photo's face, then its textured mesh (``reconstruct --obj``'s mesh and texture)
  rendered by tf2dasl.render from new viewpoints (turned -45, -20, +20, +45 degrees about the vertical axis);
* ``texture_uv_profile.png``: a profile face (``emma.jpg``, the middle shot, yaw ~57 degrees), its 512x512 UV
  texture (``reconstruct --uv-texture``) and where each texel came from (green: seen, blue: mirrored from the
  other side, red: inpainted);
* ``texture_swap.png``: ``tf2dasl swap`` between two shared photos (source, target, result);
* ``texture_expression.png``: ``tf2dasl retarget`` with a photo (expression source, target, result);
* ``texture_retarget_clip.png``: ``tf2dasl retarget`` with a video: frames of ``hamilton_clip.mp4`` (top) and
  the target photo animated with their expressions (bottom).

``--only NAME`` (repeatable) makes some of them. Each step prints what it measured (pose, texture fractions).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FIGURES = ("views", "uv_profile", "swap", "expression", "clip")
MAX_BYTES = 300 * 1024
#: the photos each figure uses (in ../shared/data/images) and which face (0-based from the left; None: largest)
VIEWS_PHOTO = ("JianzhuGuo.jpg", None)
PROFILE_PHOTO = ("emma.jpg", 1)
SWAP_SOURCE, SWAP_TARGET = ("JianzhuGuo.jpg", None), ("trump_hillary.jpg", 0)
EXPRESSION_SOURCE, EXPRESSION_TARGET = ("JianzhuGuo.jpg", None), ("trump_hillary.jpg", 0)
CLIP, CLIP_TARGET, CLIP_START, CLIP_FRAMES = "hamilton_clip.mp4", ("trump_hillary.jpg", 1), 90, (100, 124, 148, 172, 196)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model directory with UV coordinates")
    ap.add_argument("--shared", default=str(REPO.parent / "shared"), help="the shared/ folder")
    ap.add_argument("--out", default=str(REPO / "docs"), help="output folder")
    ap.add_argument("--tile", type=int, default=256, help="side of each picture in a figure, pixels")
    ap.add_argument("--only", action="append", choices=FIGURES, help="make only these figures")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from tf2dasl.api import make_reconstructor

    rec = make_reconstructor(args.model)
    shared = Path(args.shared)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = {"views": views, "uv_profile": uv_profile, "swap": swap, "expression": expression, "clip": clip}
    for name in args.only or FIGURES:
        figure = figures[name](rec, shared, args.tile)
        path = out / f"texture_{name}.png"
        if not save(path, figure):
            return 1
    return 0


# ---------------------------------------------------------------------------------------------------- helpers
def photo_face(rec, shared: Path, which):
    from tf2dasl.texture.edit import find_face
    from tf2dasl.io.images import read_image

    name, index = which
    image = read_image(shared / "data" / "images" / name)
    face = find_face(rec, image, name, index)
    print(f"{name} face {index}: yaw {face.pose[0]:.1f}, pitch {face.pose[1]:.1f}, roll {face.pose[2]:.1f}")
    return image, face


def crop(image, face, tile: int, context: float = 1.15):
    """A square around ``face``'s roi box (``context`` times its side), resized to ``tile``."""
    import cv2
    import numpy as np

    x0, y0, x1, y1 = np.asarray(face.roi_box, np.float64)
    c, side = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), max(x1 - x0, y1 - y0) * context
    M = np.array([[tile / side, 0, tile / 2 - c[0] * tile / side], [0, tile / side, tile / 2 - c[1] * tile / side]])
    return cv2.warpAffine(image, M, (tile, tile), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def label(tile, text: str):
    import cv2

    out = tile.copy()
    for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(out, text, (6, tile.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, width, cv2.LINE_AA)
    return out


def save(path: Path, image) -> bool:
    from tf2dasl.io.outputs import write_image
    import cv2

    write_image(path, image, (cv2.IMWRITE_PNG_COMPRESSION, 9))
    size = path.stat().st_size
    print(f"wrote {path} ({image.shape[1]}x{image.shape[0]}, {size / 1024:.0f} KB)")
    if size > MAX_BYTES:
        print(f"{path}: {size} bytes is over {MAX_BYTES}; use a smaller --tile", file=sys.stderr)
        return False
    return True


# ---------------------------------------------------------------------------------------------------- figures
def views(rec, shared, tile):
    """The photo, then its textured mesh seen from four new directions."""
    import numpy as np

    from tf2dasl.texture.assets import textured_face
    from tf2dasl.geometry.pose import angles_to_matrix
    from tf2dasl.render import render_textured

    image, face = photo_face(rec, shared, VIEWS_PHOTO)
    mm = rec.mm
    tf = textured_face(mm, image, face)
    print(f"texture: {tf.texture.fractions()}")
    tiles = [label(crop(image, face, tile), "photo")]
    scale = 0.8 * tile / 1.8  # the mean face is ~1.8 object units tall
    for yaw in (-45, -20, 20, 45):
        R = angles_to_matrix(np.array([[yaw, 0.0, 0.0]]))[0]
        v = tf.vertices.astype(np.float64) @ R.T
        img_v = np.stack([v[:, 0] * scale + tile / 2, -v[:, 1] * scale + tile / 2, v[:, 2] * scale], 1)
        back = np.full((tile, tile, 3), 48, np.uint8)
        tiles.append(label(render_textured(back, img_v, mm.triangles, mm.uv, tf.texture.image), f"yaw {yaw:+d}"))
    return np.concatenate(tiles, 1)


def uv_profile(rec, shared, tile):
    """A profile photo, its UV texture and the texture's sources."""
    import cv2
    import numpy as np

    from tf2dasl.texture import INPAINTED, MIRRORED, OBSERVED, uv_layout

    image, face = photo_face(rec, shared, PROFILE_PHOTO)
    mm = rec.mm
    tex = uv_layout(mm, 512).sample(image, face.vertices)
    print(f"texture: {tex.fractions()}")
    src = np.full((512, 512, 3), 0, np.uint8)
    src[tex.source == OBSERVED] = (60, 170, 60)
    src[tex.source == MIRRORED] = (200, 120, 40)
    src[tex.source == INPAINTED] = (50, 50, 210)
    small = lambda a: cv2.resize(a, (tile, tile), interpolation=cv2.INTER_AREA)  # noqa: E731
    return np.concatenate([label(crop(image, face, tile), f"photo, yaw {face.pose[0]:.0f}"),
                           label(small(tex.image), "UV texture 512x512"),
                           label(small(src), "seen / mirrored / inpainted")], 1)


def swap(rec, shared, tile):
    import numpy as np

    from tf2dasl.texture.edit import swap_face

    si, sf = photo_face(rec, shared, SWAP_SOURCE)
    ti, tf = photo_face(rec, shared, SWAP_TARGET)
    out = swap_face(rec.mm, si, sf, ti, tf)
    return np.concatenate([label(crop(si, sf, tile), "source"), label(crop(ti, tf, tile), "target"),
                           label(crop(out, tf, tile), "swap")], 1)


def expression(rec, shared, tile):
    import numpy as np

    from tf2dasl.texture.edit import EXPRESSION, retarget_expression

    si, sf = photo_face(rec, shared, EXPRESSION_SOURCE)
    ti, tf = photo_face(rec, shared, EXPRESSION_TARGET)
    out = retarget_expression(rec.mm, ti, tf, sf.params[EXPRESSION])
    return np.concatenate([label(crop(si, sf, tile), "expression source"), label(crop(ti, tf, tile), "target"),
                           label(crop(out, tf, tile), "target, source's expression")], 1)


def clip(rec, shared, tile):
    import numpy as np

    from tf2dasl.texture.edit import EXPRESSION, Retargeter
    from tf2dasl.texture.edit_video import follow_face, read_frames

    ti, tf = photo_face(rec, shared, CLIP_TARGET)
    retarget = Retargeter(rec.mm, ti, tf)
    frames, fps, _ = read_frames(shared / "data" / "videos" / CLIP, max(CLIP_FRAMES) + 1 - CLIP_START, CLIP_START)
    top, bottom = [], []
    for i, (frame, face) in enumerate(follow_face(rec, frames), start=CLIP_START):
        if i in CLIP_FRAMES and face is not None:
            top.append(label(crop(frame, face, tile * 5 // 8), f"frame {i}"))
            bottom.append(crop(retarget(np.asarray(face.params)[EXPRESSION]), tf, tile * 5 // 8))
    return np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0)


if __name__ == "__main__":
    raise SystemExit(main())
