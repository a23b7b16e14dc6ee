"""docs/profiling.md's figure: scikit-image's public-domain ``astronaut`` photo profiled to a grid of poses.

    python docs/make_profiling_figure.py --model models/mb05 --out docs/profiling_views.jpg

The face is found and fitted by the model (two passes, BlazeFace box), its crop and mirror image are fitted again
and flip-averaged, and :class:`tf2dasl.profiling.views.Profiler` turns it to every yaw of ``--yaws`` at every pitch of
``--pitches``: the first row of each pitch is the training crop as it is made (120 px), the second the same with the
label's 68 landmarks (``--zoom``: enlarged, nearest). No photo of the shared data sets is used (their licences keep
them out of the repository).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: photos compress poorly as PNG: the figure is a JPEG (~130 KB)
JPEG_QUALITY = 90
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model directory (the teacher)")
    ap.add_argument("--out", default=str(REPO / "docs" / "profiling_views.jpg"))
    ap.add_argument("--yaws", type=float, nargs="+", default=[-90, -60, -30, 0, 30, 60, 90])
    ap.add_argument("--pitches", type=float, nargs="+", default=[-15, 15])
    ap.add_argument("--zoom", type=int, default=1)
    args = ap.parse_args(argv)

    import cv2
    import numpy as np
    from skimage import data

    from tf2dasl.api import load_model, make_reconstructor
    from tf2dasl.geometry.pose import params_to_pose
    from tf2dasl.io.outputs import write_image
    from tf2dasl.profiling.fitting import MeshFitter
    from tf2dasl.profiling.sheet import draw_points, tile_rows
    from tf2dasl.profiling.sources import photo_source
    from tf2dasl.profiling.teacher import Teacher
    from tf2dasl.profiling.views import Profiler, Source, ViewPose

    model = load_model(args.model)
    teacher = Teacher.from_model(model)
    mm, size, conv = teacher.decoder.mm, teacher.decoder.size, teacher.decoder.convention
    photo = np.ascontiguousarray(data.astronaut()[:, :, ::-1])            # RGB → BGR
    face = make_reconstructor(model)(photo)[0]
    src = photo_source(photo, face.landmarks_2d, size)
    crops = np.stack([src.crop, np.ascontiguousarray(src.crop[:, ::-1])])
    plain, mirrored = teacher.params(crops)
    params = MeshFitter(mm, size, conv).flip_average(plain[None], mirrored[None])[0]
    profiler = Profiler(mm, size, conv)
    prep = profiler.prepare(Source("astronaut", src.work, src.roi, params))
    roll = float(params_to_pose(params[None])[0, 2])
    rows = []
    for pitch in args.pitches:
        views = [profiler.view(prep, ViewPose(yaw, pitch, roll)) for yaw in args.yaws]
        rows += [[v.image for v in views], [draw_points(v.image, v.landmarks) for v in views]]
    sheet = tile_rows([[cv2.resize(t, None, fx=args.zoom, fy=args.zoom, interpolation=cv2.INTER_NEAREST) for t in r]
                       for r in rows])
    params = (cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY) if args.out.lower().endswith((".jpg", ".jpeg")) else ()
    print(f"wrote {write_image(args.out, sheet, params)} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
